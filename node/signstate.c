/*
 * Sign state file (see signstate.h): a small JSON document, so an operator
 * can read what the validator signed last.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "signstate.h"
#include "tenderd/json.h"

static json_t *signed_json(const struct cons_signed *s)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, s->value, TD_HASH_LEN);
	return json_pack("{s:b, s:o, s:b, s:s, s:o}", "set", s->set, "round", td_json_uint(s->round), "nil", s->nil,
			 "value", hex, "valid_round", td_json_uint((uint64_t)((int64_t)s->valid_round + 1)));
}

static bool signed_parse(const json_t *o, struct cons_signed *s)
{
	const json_t *set = json_object_get(o, "set"), *nil = json_object_get(o, "nil"),
		     *value = json_object_get(o, "value");
	uint64_t round, vr;
	if (!json_is_boolean(set) || !json_is_boolean(nil) || !td_json_is_string(value) ||
	    !td_json_number_u64(json_object_get(o, "round"), &round) ||
	    !td_json_number_u64(json_object_get(o, "valid_round"), &vr) || round > UINT32_MAX || vr > INT32_MAX)
		return false;
	s->set = json_is_true(set);
	s->nil = json_is_true(nil);
	s->round = (uint32_t)round;
	s->valid_round = (int32_t)vr - 1;
	return td_unhex(s->value, TD_HASH_LEN, json_string_value(value), json_string_length(value));
}

int signstate_load(const char *path, struct cons_sign_state *ss, char *err, size_t errlen)
{
	char *text;
	size_t len;
	uint64_t height, round, step;
	json_t *doc;
	int rc;

	memset(ss, 0, sizeof(*ss));
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((rc = config_read_file(path, 64 * 1024, &text, &len, err, errlen)))
		return rc;
	doc = td_json_load(text, len, err, errlen);
	free(text);
	if (!doc)
		return TD_EINVAL;
	rc = TD_EINVAL;
	const json_t *any = json_object_get(doc, "any");
	if (!json_is_boolean(any) || !td_json_number_u64(json_object_get(doc, "height"), &height) ||
	    !td_json_number_u64(json_object_get(doc, "round"), &round) ||
	    !td_json_number_u64(json_object_get(doc, "step"), &step) || round > UINT32_MAX || step > 2 ||
	    !signed_parse(json_object_get(doc, "proposal"), &ss->proposal) ||
	    !signed_parse(json_object_get(doc, "prevote"), &ss->prevote) ||
	    !signed_parse(json_object_get(doc, "precommit"), &ss->precommit) ||
	    !signed_parse(json_object_get(doc, "locked"), &ss->locked)) {
		snprintf(err, errlen, "%s: damaged sign state; refusing to start (it guards against double signing)",
			 path);
		memset(ss, 0, sizeof(*ss));
		goto out;
	}
	ss->any = json_is_true(any);
	ss->height = height;
	ss->round = (uint32_t)round;
	ss->step = (enum cons_step)step;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

int signstate_save(const char *path, const struct cons_sign_state *ss, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8], dir[PATH_MAX];
	json_t *doc = json_pack("{s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "any", ss->any, "height",
				td_json_uint(ss->height), "round", td_json_uint(ss->round), "step",
				td_json_uint((uint64_t)ss->step), "proposal", signed_json(&ss->proposal), "prevote",
				signed_json(&ss->prevote), "precommit", signed_json(&ss->precommit), "locked",
				signed_json(&ss->locked));
	char *text = td_json_dump(doc, JSON_COMPACT);
	json_decref(doc);
	int fd = -1, rc = TD_EIO;
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: fsync directory: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}
