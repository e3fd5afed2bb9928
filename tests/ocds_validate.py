#!/usr/bin/python3
"""Validates an OCDS 1.1 package against the official schemas, offline.

usage: ocds_validate.py SCHEMA_DIR release|record FILE

SCHEMA_DIR holds release-package-schema.json, record-package-schema.json and
release-schema.json (tests/data/ocds). The package schemas "$ref" the release
schema by its "id" URL; a RefResolver whose store maps every schema's "id" to
the local file resolves them without the network, and any other remote
reference fails instead of being fetched. Validation is JSON Schema Draft 4
(as the schemas declare) with the formats OCDS uses checked: date-time
(RFC 3339) and uri. Numbers are read as Decimal, so 712500000.50 is checked as
written. Prints every error with its path; exits 0 when valid, 1 when not,
2 on a usage or file error.

Needs python3-jsonschema (Debian's /usr/bin/python3).
"""

import json
import re
import sys
from decimal import Decimal
from pathlib import Path

try:
    import jsonschema
    from jsonschema import Draft4Validator, FormatChecker, RefResolver
except ImportError as e:  # pragma: no cover - depends on the system
    print("ocds_validate: python3-jsonschema is missing (%s); scripts/setup.sh installs it" % e,
          file=sys.stderr)
    sys.exit(2)

SCHEMAS = ("release-schema.json", "release-package-schema.json", "record-package-schema.json")

# RFC 3339 date-time, as OCDS requires for every date.
DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"(Z|z|[+-]([01]\d|2[0-3]):[0-5]\d)$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")


def format_checker():
    fc = FormatChecker(formats=())

    @fc.checks("date-time")
    def _date_time(value):
        return not isinstance(value, str) or DATE_TIME.match(value) is not None

    @fc.checks("uri")
    def _uri(value):
        return not isinstance(value, str) or URI.match(value) is not None

    return fc


def short(msg, limit=300):
    """A message cut to limit characters (oneOf messages quote the whole instance)."""
    return msg if len(msg) <= limit else msg[:limit] + "... (%d characters)" % len(msg)


def no_remote(uri):
    raise jsonschema.RefResolutionError("remote reference %s is not available offline" % uri)


def main(argv):
    if len(argv) != 4 or argv[2] not in ("release", "record"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    schema_dir, kind, name = Path(argv[1]), argv[2], argv[3]
    try:
        schemas = {f: json.loads((schema_dir / f).read_text(encoding="utf-8")) for f in SCHEMAS}
        with open(name, encoding="utf-8") as f:
            doc = json.load(f, parse_float=Decimal)
    except (OSError, ValueError) as e:
        print("ocds_validate: %s" % e, file=sys.stderr)
        return 2
    store = {s["id"]: s for s in schemas.values()}
    schema = schemas["%s-package-schema.json" % kind]
    resolver = RefResolver.from_schema(schema, store=store, handlers={"http": no_remote, "https": no_remote})
    validator = Draft4Validator(schema, resolver=resolver, format_checker=format_checker())
    try:
        errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    except jsonschema.RefResolutionError as e:
        print("ocds_validate: %s: %s" % (name, e), file=sys.stderr)
        return 1
    for e in errors:
        path = "/".join(str(p) for p in e.absolute_path) or "(top)"
        print("%s: %s: %s" % (name, path, short(e.message)), file=sys.stderr)
        # oneOf/anyOf failures: show why each branch failed (releases: linked or embedded).
        for sub in sorted(e.context or [], key=lambda s: [str(p) for p in s.absolute_path])[:10]:
            sp = "/".join(str(p) for p in sub.absolute_path) or "(top)"
            print("    %s: %s" % (sp, short(sub.message)), file=sys.stderr)
    if errors:
        print("ocds_validate: %s: %d error%s against the OCDS %s package schema"
              % (name, len(errors), "" if len(errors) == 1 else "s", kind), file=sys.stderr)
        return 1
    n = len(doc.get("releases" if kind == "release" else "records", []))
    print("ocds_validate: %s: valid OCDS %s package (%d %s%s)"
          % (name, kind, n, kind, "" if n == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
