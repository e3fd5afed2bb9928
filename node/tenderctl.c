/*
 * tenderctl: the command-line client of tenderd.
 *
 * Speaks only JSON-RPC 2.0 through the node's Unix socket: builds one
 * request from the command line, sends it as one line, reads answer lines
 * and prints the "result" (pretty JSON on stdout, or a table for `list
 * --format table`) or the error (stderr). `call` with a JSON array sends it
 * as a batch and prints the array of answers. `watch` keeps the connection open
 * and prints each tender.release notification as one compact JSON line.
 * `compile` is the one command that needs no node: it merges the releases of a
 * file offline into a record package (tenderd/merge.h, the OCDS merge routine).
 * `import` publishes a release package's releases, pipelining tender.publish
 * requests on one connection, each ocid's releases one after the other.
 * `export --format csv` pages through tender.list and writes RFC 4180 rows.
 * Release files and every answer line are parsed with td_json_load and
 * printed with td_json_dump, so amounts keep the exact text the agency wrote
 * all the way to the node and back. Uses only include/tenderd.
 *
 * Exit codes (tenderd/types.h): TD_EXIT_OK, TD_EXIT_REFUSED (the node
 * answered with an error, or a local file is bad), TD_EXIT_UNREACHABLE (no
 * connection, no answer, no answer in time, or the connection dropped),
 * TD_EXIT_USAGE.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tenderd/isotime.h"
#include "tenderd/json.h"
#include "tenderd/merge.h"
#include "tenderd/proof.h"
#include "tenderd/release.h"
#include "tenderd/types.h"

#define CTL_ANSWER_MAX (64 * 1024 * 1024)   /* longest answer or notification line we accept */
#define CTL_FILE_MAX (1024 * 1024)          /* longest release file */
#define CTL_COMPILE_MAX (512 * 1024 * 1024) /* longest file of releases that compile reads */
#define CTL_TIMEOUT_DEFAULT 30              /* seconds, for requests that do not --wait */
#define CTL_DEFAULT_SOCKET "./tenderd.sock"
#define CTL_TITLE_COLS 40  /* widest TITLE cell of list --format table, in terminal columns */
#define CTL_AGENCY_COLS 40 /* widest AGENCY cell */

/* Set by the SIGINT/SIGTERM handler that `watch` installs; read by wait_fd. */
static volatile sig_atomic_t stop_requested;

/* Every option a command may take after its name. */
enum opt {
	O_WAIT,
	O_REASON,
	O_LIMIT,
	O_CURSOR,
	O_WITH_CURSOR,
	O_AGENCY,
	O_STATUS,
	O_CATEGORY,
	O_METHOD,
	O_SINCE,
	O_UNTIL,
	O_FORMAT,
	O_FROM,
	O_TO,
	O_RECORDS,
	O_OUT,
	O_VERSIONED,
	O_DRY_RUN,
	O_GENESIS,
	O_PROOFS,
	O_AT,
	O_RATIONALE,
	O_COUNT
};

static const struct {
	const char *name;
	const char *metavar; /* NULL: a flag without a value */
} opt_defs[O_COUNT] = {
	[O_WAIT] = { "--wait", NULL },
	[O_REASON] = { "--reason", "TEXT" },
	[O_LIMIT] = { "--limit", "N" },
	[O_CURSOR] = { "--cursor", "C" },
	[O_WITH_CURSOR] = { "--with-cursor", NULL },
	[O_AGENCY] = { "--agency", "NAME|PUBKEY" },
	[O_STATUS] = { "--status", "STATUS" },
	[O_CATEGORY] = { "--category", "CATEGORY" },
	[O_METHOD] = { "--method", "METHOD" },
	[O_SINCE] = { "--since", "DATE" },
	[O_UNTIL] = { "--until", "DATE" },
	[O_FORMAT] = { "--format", "FORMAT" },
	[O_FROM] = { "--from", "HEIGHT" },
	[O_TO] = { "--to", "HEIGHT" },
	[O_RECORDS] = { "--records", NULL },
	[O_OUT] = { "--out", "FILE" },
	[O_VERSIONED] = { "--versioned", NULL },
	[O_DRY_RUN] = { "--dry-run", NULL },
	[O_GENESIS] = { "--genesis", "FILE" },
	[O_PROOFS] = { "--proofs", "DIR" },
	[O_AT] = { "--at", "HEIGHT" },
	[O_RATIONALE] = { "--rationale", "TEXT" },
};

/* One option of one command, with what it means for that command. */
struct opt_help {
	enum opt opt;
	const char *help;
};

#define CTL_CMD_OPTS_MAX 13

struct command {
	const char *name;
	const char *args;
	const char *help;                       /* one line, for tenderctl --help */
	const char *detail;                     /* a paragraph, for tenderctl COMMAND --help */
	struct opt_help opts[CTL_CMD_OPTS_MAX]; /* ends at the first entry with help == NULL */
};

#define WAIT_HELP                                                                           \
	"return only once the record is committed in a block, and print the block height\n" \
	"(no default --timeout then)"

static const struct command commands[] = {
	{ "status",
	  "",
	  "show the node's status",
	  "Prints the node's status: chain id, this node's name and key, height, records,\n"
	  "mempool, peers, validators and consensus state.",
	  { { O_COUNT, NULL } } },
	{ "publish",
	  "tender|award FILE|-",
	  "publish a new tender or an award (OCDS release JSON; - is stdin)",
	  "Publishes an OCDS release fragment read from FILE (- reads stdin). `publish tender`\n"
	  "starts a contracting process: the fragment needs an \"ocid\" with the chain's ocid\n"
	  "prefix and a \"tender\" object. `publish award` needs the \"ocid\" of a tender this\n"
	  "agency published that is not cancelled; its \"awards\" list suppliers, which the\n"
	  "node also lists as parties with the role supplier. The node fills in id, date,\n"
	  "tag, initiationType and buyer, validates, signs and answers {id, ocid, release_id}\n"
	  "(id is the record id: tenderctl record ID tells later what became of it).",
	  { { O_WAIT, WAIT_HELP }, { O_COUNT, NULL } } },
	{ "amend",
	  "OCID FILE|-",
	  "publish an amendment of tender OCID (tag tenderAmendment)",
	  "Publishes a tenderAmendment release of tender OCID from FILE (- reads stdin): a\n"
	  "release fragment with the changed fields and, in tender.amendments, the\n"
	  "amendment's id, date and rationale. The node points each amendment at the release\n"
	  "it amends (amendsReleaseID: the tender's latest release) and at this release\n"
	  "(releaseID) unless the fragment sets them. Only the agency that published the\n"
	  "tender may amend it, and not once it is cancelled.",
	  { { O_WAIT, WAIT_HELP }, { O_COUNT, NULL } } },
	{ "cancel",
	  "OCID --reason TEXT",
	  "cancel tender OCID, giving the reason (tag tenderCancellation)",
	  "Publishes a tenderCancellation release of tender OCID: tender.status becomes\n"
	  "cancelled and the reason becomes tender.statusDetails. A cancelled tender takes\n"
	  "no further releases. Only the agency that published the tender may cancel it.",
	  { { O_REASON, "why the tender is cancelled (required; UTF-8 text)" },
	    { O_WAIT, WAIT_HELP },
	    { O_COUNT, NULL } } },
	{ "get",
	  "OCID",
	  "show tender OCID: compiled release and every release",
	  "Prints {ocid, compiled, releases}: the OCDS compiled release (every release merged\n"
	  "in order) and the releases in ledger order, each with its record_id, block\n"
	  "height, time, agency key, agency_name and kind.",
	  { { O_COUNT, NULL } } },
	{ "list",
	  "[FILTERS] [--limit N] [--cursor C] [--format json|table]",
	  "list tenders, newest first",
	  "Lists tender summaries, newest first (by the block of the tender's first\n"
	  "release). Filters combine (all must match). A page holds at most --limit\n"
	  "tenders; when more follow, the next cursor is printed on stderr; pass it back\n"
	  "with --cursor and the same filters for the next page. Paging is stable: a\n"
	  "tender published meanwhile does not make a page repeat or skip one.",
	  { { O_AGENCY, "only tenders published by this agency: its validator name or 64-hex public key" },
	    { O_STATUS, "only tenders whose compiled tender.status is STATUS\n"
			"(planning, planned, active, cancelled, unsuccessful, complete, withdrawn)" },
	    { O_CATEGORY, "only tenders with this tender.mainProcurementCategory (goods, works, services)" },
	    { O_METHOD, "only tenders with this tender.procurementMethod (open, selective, limited, direct)" },
	    { O_SINCE, "only tenders whose tender period starts on or after DATE\n"
		       "(without a tender period: the date of the tender's first release); DATE is\n"
		       "a day, 2020-03-01 (from 00:00 UTC), or an ISO 8601 date-time with a zone\n"
		       "such as 2020-03-01T09:00:00+09:00" },
	    { O_UNTIL, "only tenders whose tender period starts on or before DATE: a day\n"
		       "(2020-03-31: up to the end of that day, UTC) or a date-time, as --since" },
	    { O_LIMIT, "at most N tenders in this page, 1..1000 (default 50)" },
	    { O_CURSOR, "the page after an earlier one: the next_cursor it gave" },
	    { O_WITH_CURSOR, "print the whole answer {tenders, next_cursor} instead of the array (json)" },
	    { O_FORMAT, "output format: json (default: the array of tenders) or table (for people)\n"
			"table: aligned columns OCID, TITLE (cut at 40 columns), STATUS, AGENCY,\n"
			"VALUE (the exact amount and currency) and DATE (tender period start)" },
	    { O_COUNT, NULL } } },
	{ "watch",
	  "[--from HEIGHT]",
	  "stream committed releases as JSON lines",
	  "Subscribes to committed releases (JSON-RPC tender.watch) and prints each as one\n"
	  "compact JSON line on stdout, in chain order: {height, index, block_records,\n"
	  "record_id, ocid, release_id, kind, time, agency, agency_name, release}. Runs until\n"
	  "interrupted (SIGINT or SIGTERM: exit 0) or the node goes away (the connection\n"
	  "drops, or the node ends the stream because it is stopping: exit 2).\n"
	  "To resume after a disconnect without missing or repeating a release: let H be\n"
	  "the last height whose line with index == block_records-1 was seen; resume with\n"
	  "--from H+1 (or --from the last height seen, skipping the indexes already seen).",
	  { { O_FROM, "replay the releases of blocks HEIGHT.. first, then continue live\n"
		      "(default: only blocks committed from now on)" },
	    { O_COUNT, NULL } } },
	{ "export",
	  "[--from H] [--to H] [--records] [--format json|csv] [--out FILE] [--proofs DIR]",
	  "write an OCDS 1.1 release or record package, or a CSV of the tenders",
	  "Exports the releases committed in blocks --from..--to as an OCDS 1.1 release\n"
	  "package, or with --records as a record package (one record per ocid with all its\n"
	  "releases and the compiled release). Both validate against the official OCDS 1.1\n"
	  "package schemas; amounts keep their exact text.\n"
	  "With --format csv it writes every tender instead, newest first, one row each in the\n"
	  "columns of list --format table: ocid, title, status, agency, amount (as written),\n"
	  "currency, date (tender period start, else the tender's date, as written), after a\n"
	  "header row; RFC 4180: a field with a comma, a double quote, CR or LF is quoted, its\n"
	  "quotes doubled, and lines end with CRLF.",
	  { { O_FROM, "first block (default 1)" },
	    { O_TO, "last block, inclusive (default: the current height)" },
	    { O_RECORDS, "a record package with compiled releases instead of a release package" },
	    { O_FORMAT, "json (the OCDS package, default) or csv (one row per tender)\n"
			"csv takes no --from, --to or --records: it lists every tender" },
	    { O_OUT, "write the package (or the CSV) to FILE instead of stdout" },
	    { O_PROOFS, "also write the proof of each ocid in the package to DIR/OCID.proof.json\n"
			"(DIR must exist; see tenderctl proof and verify)" },
	    { O_COUNT, NULL } } },
	{ "import",
	  "PACKAGE.json [--dry-run]",
	  "publish the releases of an OCDS release package, in date order, resumably",
	  "Publishes the releases of an OCDS 1.1 release package (or a JSON array of\n"
	  "releases), for example last year's procurement from another system, through the\n"
	  "node, each as it was first published: with its release id and its date (the\n"
	  "ledger's time is the block's). A release is published as the kind its tag names:\n"
	  "exactly one tag, tender, tenderAmendment, tenderCancellation or award. Anything\n"
	  "else is reported, not guessed: another ocid prefix than the chain's, planning,\n"
	  "contract and other tags, a release without an id or an ISO 8601 date, one the\n"
	  "node's validation refuses, a release id the package repeats.\n"
	  "Releases go in date order; each ocid's next release once the one before it is\n"
	  "committed, many ocids at a time (pipelined, each with \"wait\"). A release whose\n"
	  "id the ledger already holds for its ocid is skipped, so a second run, or a run\n"
	  "after an interruption, publishes only what is missing.\n"
	  "Progress goes to stderr (a bar with the releases done, the rate and the time left\n"
	  "on a terminal, else a line every 2 s); then a summary on stdout: imported,\n"
	  "skipped, refused (each with its position in the file and the reason), the rate.\n"
	  "Exits 1 if any release is refused. --timeout bounds the wait for each answer.",
	  { { O_DRY_RUN, "check the mapping, the releases and the lifecycle against the ledger\n"
			 "(tender first, the same agency, nothing after a cancellation) and print\n"
			 "the summary, without publishing anything" },
	    { O_COUNT, NULL } } },
	{ "compile",
	  "[--versioned] FILE|-",
	  "merge OCDS releases into a record package, offline (no node needed)",
	  "Reads FILE (- is stdin): a JSON array of OCDS 1.1 releases or a release package,\n"
	  "of one or several ocids, and prints a record package with one record per ocid\n"
	  "(in the order the ocids first appear): its releases ordered by date and its\n"
	  "compiledRelease, or with --versioned its versionedRelease, by the OCDS 1.1 merge\n"
	  "routine with the rules of the release schema (as ocdskit compile does). A\n"
	  "compiled release has tag [\"compiled\"], the latest release's date and the id\n"
	  "<ocid>-<date>. The package keeps a release package's uri (also in \"packages\"),\n"
	  "publisher, license, publicationPolicy, extensions and publishedDate; for a bare\n"
	  "array it says publisher \"tenderctl compile\" and the latest release's date.\n"
	  "Talks to no node; exits 1 if the file is not JSON, holds no releases, or a\n"
	  "release has no ocid or no date.",
	  { { O_VERSIONED, "versioned releases (every value with its releaseID, releaseDate,\n"
			   "releaseTag) instead of compiled releases" },
	    { O_OUT, "write the package to FILE instead of stdout" },
	    { O_COUNT, NULL } } },
	{ "block",
	  "HEIGHT",
	  "show the committed block at HEIGHT",
	  "Prints the block at HEIGHT: hash, previous hash, time, proposer, record ids and\n"
	  "its commit (the validators' signatures).",
	  { { O_COUNT, NULL } } },
	{ "record",
	  "ID",
	  "show what became of record ID: committed, pending, dropped or unknown",
	  "Asks the node what became of the record with id ID (64 hex digits, the id\n"
	  "publish, amend and cancel print) and prints {id, status, ...}: status is\n"
	  "committed (with the block height; also for records committed before a restart),\n"
	  "pending (waiting in the mempool for a block), dropped (it can never commit; reason\n"
	  "says why, dropped_at when; the node remembers its last 4096 drops while it runs) or\n"
	  "unknown (never seen by this node, or dropped before its last restart or longer\n"
	  "ago; message says so). Every status exits 0.",
	  { { O_COUNT, NULL } } },
	{ "evidence",
	  "",
	  "show validators caught signing two different votes, with both signed votes",
	  "Prints the evidence this node keeps (evidence.jsonl in its home, newest last,\n"
	  "at most the last 1000): for each, the chain id, the validator's index, name and\n"
	  "public key, the height, round and vote type, and both votes, each with its value\n"
	  "(null for nil) and its Ed25519 signature. Anyone with the genesis can check both\n"
	  "signatures (see the README, \"Evidence\").",
	  { { O_COUNT, NULL } } },
	{ "validators",
	  "",
	  "show the validator set that signs a height",
	  "Prints the validators that sign the next height (RPC chain.validators), or with\n"
	  "--at the height given: in proposer order, with the set's hash (what block headers\n"
	  "name as next validators) and the height it signs from.",
	  { { O_AT, "the height whose signers to show (known up to two past the tip)" }, { O_COUNT, NULL } } },
	{ "propose",
	  "add-validator|add-member|add-observer ID_FILE | remove PUBKEY | replace-key PUBKEY ID_FILE",
	  "propose a change to the chain's parties (validators only)",
	  "Signs a governance proposal with this node's key and publishes it (RPC\n"
	  "gov.propose): add the agency of identity file ID_FILE (what `tenderd id` prints)\n"
	  "as a validator, member or observer; remove the party holding PUBKEY; or give the\n"
	  "party holding PUBKEY the key of ID_FILE. The proposal counts as this validator's\n"
	  "approval; once more than two thirds of the validators approved it (tenderctl\n"
	  "approve), it takes effect two blocks after the block that decided it, on every\n"
	  "node at once. It expires after 1000 blocks. Prints the proposal's record id.",
	  { { O_WAIT, WAIT_HELP }, { O_RATIONALE, "why, kept with the proposal" }, { O_COUNT, NULL } } },
	{ "approve",
	  "PROPOSAL_ID",
	  "approve a pending proposal (validators only)",
	  "Signs this validator's approval of the proposal with record id PROPOSAL_ID (RPC\n"
	  "gov.approve).",
	  { { O_WAIT, WAIT_HELP }, { O_COUNT, NULL } } },
	{ "proposals",
	  "",
	  "list the governance proposals",
	  "Prints every proposal the chain keeps, newest first (RPC gov.proposals): the\n"
	  "change, who proposed it, the approvals so far, and its status (pending, decided\n"
	  "with the height it takes effect, rejected with the reason, expired).",
	  { { O_COUNT, NULL } } },
	{ "members",
	  "",
	  "show the chain's validators, members and observers",
	  "Prints the chain's parties by role (RPC chain.members): validators vote and\n"
	  "propose, members publish records but do not vote, observers follow the chain\n"
	  "read-only. Each entry has the agency's name and public key, whether it is this\n"
	  "node, and whether this node is connected to it now.",
	  { { O_COUNT, NULL } } },
	{ "proof",
	  "OCID",
	  "write the proof of a tender's history, for anyone to check offline",
	  "Asks the node for the proof of tender OCID (RPC proof.get) and prints it, or\n"
	  "writes it to --out: one JSON document with every release of the tender as signed,\n"
	  "each with its Merkle path to its block's records root, and the header and commit\n"
	  "(the validators' signatures) of each block that holds one. `tenderctl verify`\n"
	  "checks it with the genesis alone (see the README, \"Proofs\").",
	  { { O_OUT, "write the proof to FILE instead of stdout" }, { O_COUNT, NULL } } },
	{ "verify",
	  "FILE --genesis GENESIS",
	  "check a tender's proof offline, with the chain's genesis alone (no node needed)",
	  "Checks the proof in FILE (- is stdin) against GENESIS (a genesis.json): every\n"
	  "block's commit carries the signatures of more than two thirds of its validators,\n"
	  "every release is signed by its agency and is in its block (Merkle path), and the\n"
	  "releases form the tender's unbroken history (each names the one before it). It\n"
	  "prints what was proven and exits 0, or says which check failed and exits 1.\n"
	  "A proof cannot show that no release came after its last one. Talks to no node.",
	  { { O_GENESIS, "the genesis of the chain the proof is for (required)" }, { O_COUNT, NULL } } },
	{ "call",
	  "METHOD [PARAMS_JSON] | BATCH_JSON",
	  "send a raw JSON-RPC request, or a batch of them",
	  "Sends METHOD with PARAMS_JSON (an object or array; default {}) and prints the\n"
	  "result, e.g. tenderctl call block.get '{\"height\": 1}'.\n"
	  "With one argument that is a JSON array, sends it as it is as a JSON-RPC batch\n"
	  "(each entry a whole request object, with \"jsonrpc\": \"2.0\", \"method\" and an\n"
	  "\"id\" unless it is a notification) and prints the array of answers, in any\n"
	  "order; exits 1 if any of them is an error. A batch of notifications only gets\n"
	  "no answer and prints nothing. E.g.\n"
	  "tenderctl call '[{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"block.get\",\n"
	  "  \"params\": {\"height\": 1}}, {\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"status\"}]'",
	  { { O_COUNT, NULL } } },
};

static const char options_help[] =
	"Options for every command:\n"
	"  --socket PATH      tenderd's socket (default: $TENDERD_SOCKET, else " CTL_DEFAULT_SOCKET ")\n"
	"  --timeout SECONDS  give up when no answer came in SECONDS (default: 30, none\n"
	"                     with --wait; 0: none; watch waits for its stream forever)\n"
	"  -h, --help         show this help; COMMAND --help shows the command's\n"
	"\n"
	"Exit status: 0 ok, 1 refused (by the node, or a bad local file),\n"
	"             2 node unreachable (no answer in time, or the connection dropped),\n"
	"             3 usage error.\n";

static size_t command_count(void)
{
	return sizeof(commands) / sizeof(commands[0]);
}

static bool command_takes(const struct command *c, enum opt o)
{
	for (size_t i = 0; i < CTL_CMD_OPTS_MAX && c->opts[i].help; i++)
		if (c->opts[i].opt == o)
			return true;
	return false;
}

static void print_help(FILE *f)
{
	fprintf(f, "Usage: tenderctl [--socket PATH] [--timeout SECONDS] COMMAND [ARGS]\n\n"
		   "Talks to a running tenderd through its JSON-RPC socket.\n\nCommands:\n");
	for (size_t i = 0; i < command_count(); i++) {
		const struct command *c = &commands[i];
		fprintf(f, "  %s%s%s\n      %s\n", c->name, c->args[0] ? " " : "", c->args, c->help);
		for (size_t k = 0; k < CTL_CMD_OPTS_MAX && c->opts[k].help; k++) {
			enum opt o = c->opts[k].opt;
			const char *nl = strchr(c->opts[k].help, '\n');
			int len = nl ? (int)(nl - c->opts[k].help) : (int)strlen(c->opts[k].help);
			char left[48];
			snprintf(left, sizeof(left), "%s%s%s", opt_defs[o].name, opt_defs[o].metavar ? " " : "",
				 opt_defs[o].metavar ? opt_defs[o].metavar : "");
			fprintf(f, "      %-24s %.*s\n", left, len, c->opts[k].help);
		}
	}
	fprintf(f, "\n%s", options_help);
}

/* Prints text with every line after the first indented by indent spaces. */
static void print_indented(FILE *f, const char *text, int indent)
{
	for (const char *p = text; *p; p++) {
		fputc(*p, f);
		if (*p == '\n')
			fprintf(f, "%*s", indent, "");
	}
}

static void print_command_help(FILE *f, const struct command *c)
{
	fprintf(f, "Usage: tenderctl [--socket PATH] [--timeout SECONDS] %s%s%s\n\n%s\n\n", c->name,
		c->args[0] ? " " : "", c->args, c->detail);
	if (c->opts[0].help) {
		fprintf(f, "Options of %s:\n", c->name);
		for (size_t k = 0; k < CTL_CMD_OPTS_MAX && c->opts[k].help; k++) {
			enum opt o = c->opts[k].opt;
			char left[48];
			snprintf(left, sizeof(left), "%s%s%s", opt_defs[o].name, opt_defs[o].metavar ? " " : "",
				 opt_defs[o].metavar ? opt_defs[o].metavar : "");
			fprintf(f, "  %-24s ", left);
			print_indented(f, c->opts[k].help, 27);
			fputc('\n', f);
		}
		fputc('\n', f);
	}
	fputs(options_help, f);
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;
	fputs("tenderctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(tenderctl --help lists the commands; tenderctl COMMAND --help explains one)\n", stderr);
	return TD_EXIT_USAGE;
}

/* A NUL-terminated plain decimal integer that fits uint64. */
static bool parse_u64(const char *s, uint64_t *out)
{
	return td_parse_u64(s, strlen(s), out);
}

/*
 * Reads and parses a release file ("-" is stdin), at most CTL_FILE_MAX bytes.
 * Returns a new tree, or NULL after printing why (exit TD_EXIT_REFUSED).
 */
static json_t *load_file_max(const char *name, size_t max)
{
	const char *shown = strcmp(name, "-") == 0 ? "stdin" : name;
	FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
	char *buf = NULL, err[TD_ERRMSG_MAX];
	size_t len = 0;
	json_t *v = NULL;

	if (!f) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown, strerror(errno));
		return NULL;
	}
	buf = td_xmalloc(max + 1);
	for (;;) {
		size_t n = fread(buf + len, 1, max + 1 - len, f);
		len += n;
		if (n == 0 || len > max)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown, strerror(errno));
		goto out;
	}
	if (len > max) {
		fprintf(stderr, "tenderctl: %s: larger than %zu bytes\n", shown, max);
		goto out;
	}
	v = td_json_load(buf, len, err, sizeof(err));
	if (!v)
		fprintf(stderr, "tenderctl: %s: invalid JSON: %s\n", shown, err);
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return v;
}

static json_t *load_file(const char *name)
{
	return load_file_max(name, CTL_FILE_MAX);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits for events on fd until deadline_ms (negative: forever); 0 ready, -1
 * error, -2 timeout, -3 interrupted by SIGINT/SIGTERM (only while `watch`
 * has its handler installed).
 */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int timeout = -1;
		if (stop_requested)
			return -3;
		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - now_ms();
			if (left <= 0)
				return -2;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		int rc = poll(&p, 1, timeout);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * A connection to the node. Incoming bytes collect in rbuf (rcap bytes,
 * rlen held); a line handed out by ctl_read_line occupies the first rused
 * bytes and is dropped on the next call, so bytes after a newline (the next
 * notification) are kept.
 */
struct conn {
	const char *path;
	unsigned timeout_s;  /* 0: none */
	int64_t deadline_ms; /* -1: none */
	int fd;
	char *rbuf;
	size_t rlen, rcap, rused;
};

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = c->rcap = c->rused = 0;
}

static int unreachable(const struct conn *c, const char *why)
{
	fprintf(stderr, "tenderctl: cannot reach tenderd at %s: %s\n", c->path, why);
	return TD_EXIT_UNREACHABLE;
}

static int timed_out(const struct conn *c)
{
	fprintf(stderr, "tenderctl: no answer from tenderd at %s within %u s\n", c->path, c->timeout_s);
	return TD_EXIT_UNREACHABLE;
}

/* Not an exit code: a read or send stopped by SIGINT/SIGTERM (watch turns it into TD_EXIT_OK). */
#define CTL_STOPPED (-1)

/* Maps a wait_fd failure to an exit code, or CTL_STOPPED for -3 (interrupted). */
static int wait_failed(const struct conn *c, int w)
{
	if (w == -3)
		return CTL_STOPPED;
	if (w == -2)
		return timed_out(c);
	return unreachable(c, strerror(errno));
}

static int ctl_connect(struct conn *c)
{
	struct sockaddr_un sa;
	size_t plen = strlen(c->path);

	if (plen >= sizeof(sa.sun_path))
		return unreachable(c, strerror(ENAMETOOLONG));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->path, plen + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return unreachable(c, strerror(errno));
	if (c->timeout_s) {
		/* Bounds a connect that waits for room in a busy node's backlog. */
		struct timeval tv = { .tv_sec = (time_t)c->timeout_s };
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(c->fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS)
			return timed_out(c);
		return unreachable(c, strerror(errno));
	}
	return TD_EXIT_OK;
}

static int ctl_send(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		int w = wait_fd(c->fd, POLLOUT, c->deadline_ms);
		if (w < 0)
			return wait_failed(c, w);
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return unreachable(c, strerror(errno));
		}
		p += k;
		n -= (size_t)k;
	}
	return TD_EXIT_OK;
}

/*
 * Reads the next line (without its newline, NUL-terminated) into *line,
 * which stays valid until the next call or conn_close. Lines longer than
 * CTL_ANSWER_MAX are refused. On a failure returns the exit code after
 * printing why (a connection closed between lines prints `closed` as why),
 * or CTL_STOPPED when interrupted.
 */
static int ctl_read_line(struct conn *c, char **line, size_t *linelen, const char *closed)
{
	if (c->rused) {
		memmove(c->rbuf, c->rbuf + c->rused, c->rlen - c->rused);
		c->rlen -= c->rused;
		c->rused = 0;
	}
	size_t scanned = 0;
	for (;;) {
		char *nl = c->rlen > scanned ? memchr(c->rbuf + scanned, '\n', c->rlen - scanned) : NULL;
		if (nl) {
			*nl = '\0';
			*line = c->rbuf;
			*linelen = (size_t)(nl - c->rbuf);
			c->rused = *linelen + 1;
			return TD_EXIT_OK;
		}
		scanned = c->rlen;
		if (c->rlen > CTL_ANSWER_MAX)
			return unreachable(c, "answer line too long");
		if (c->rcap - c->rlen < 64 * 1024) {
			size_t cap = c->rcap ? c->rcap * 2 : 128 * 1024;
			if (cap > CTL_ANSWER_MAX + 64 * 1024 + 1)
				cap = CTL_ANSWER_MAX + 64 * 1024 + 1;
			c->rbuf = td_xrealloc(c->rbuf, cap);
			c->rcap = cap;
		}
		int w = wait_fd(c->fd, POLLIN, c->deadline_ms);
		if (w < 0)
			return wait_failed(c, w);
		ssize_t k = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1, MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return unreachable(c, strerror(errno));
		}
		if (k == 0)
			return unreachable(c, c->rlen ? "connection closed in the middle of a line" : closed);
		c->rlen += (size_t)k;
	}
}

/*
 * Reads the next line as a JSON object (or, with array_ok, an array); NULL
 * with *rc set (an exit code, or CTL_STOPPED).
 */
static json_t *ctl_read_value(struct conn *c, const char *closed, bool array_ok, int *rc)
{
	char *line = NULL, err[TD_ERRMSG_MAX];
	size_t len = 0;

	*rc = ctl_read_line(c, &line, &len, closed);
	if (*rc != TD_EXIT_OK)
		return NULL;
	json_t *v = td_json_load(line, len, err, sizeof(err));
	if (!v || !(json_is_object(v) || (array_ok && json_is_array(v)))) {
		fprintf(stderr, "tenderctl: tenderd at %s sent a malformed line%s%s\n", c->path, v ? "" : ": ",
			v ? "" : err);
		json_decref(v);
		*rc = TD_EXIT_UNREACHABLE;
		return NULL;
	}
	return v;
}

/* Reads the next line as a JSON object; NULL with *rc set (an exit code, or CTL_STOPPED). */
static json_t *ctl_read_object(struct conn *c, const char *closed, int *rc)
{
	return ctl_read_value(c, closed, false, rc);
}

/* Prints v as indented JSON on f. */
static int print_json(FILE *f, const json_t *v)
{
	char *s = td_json_dump(v, JSON_INDENT(2));
	if (!s) {
		fprintf(stderr, "tenderctl: cannot print the answer\n");
		return TD_EXIT_UNREACHABLE;
	}
	fprintf(f, "%s\n", s);
	free(s);
	return TD_EXIT_OK;
}

/* Prints a JSON-RPC error object on stderr; returns TD_EXIT_REFUSED. */
static int print_error(const json_t *e)
{
	json_t *msg = json_object_get(e, "message");
	size_t codelen = 0;
	const char *code = td_json_number_text(json_object_get(e, "code"), &codelen);
	fprintf(stderr, "tenderctl: %s (code %.*s)\n",
		td_json_is_string(msg) ? json_string_value(msg) : "error without a message", code ? (int)codelen : 1,
		code ? code : "?");
	return TD_EXIT_REFUSED;
}

/*
 * Sets the connection's deadline, connects and sends line and then, unless
 * NULL, line2, each followed by a newline. The deadline covers connecting
 * and sending.
 */
static int send_lines(struct conn *c, const char *line, const char *line2)
{
	size_t n = strlen(line), n2 = line2 ? strlen(line2) : 0;
	char *buf = td_xmalloc(n + n2 + 2);
	int rc;

	memcpy(buf, line, n);
	buf[n] = '\n';
	if (line2) {
		memcpy(buf + n + 1, line2, n2);
		buf[n + 1 + n2] = '\n';
	}
	c->deadline_ms = c->timeout_s ? now_ms() + (int64_t)c->timeout_s * 1000 : -1;
	rc = ctl_connect(c);
	if (rc == TD_EXIT_OK)
		rc = ctl_send(c, buf, n + 1 + (line2 ? n2 + 1 : 0));
	free(buf);
	return rc;
}

/*
 * Connects and sends the request method(params) (params stolen). The
 * connection's deadline covers connecting and sending.
 */
static int send_request(struct conn *c, const char *method, json_t *params)
{
	json_t *req = json_object();
	char *line;
	int rc;

	json_object_set_new(req, "jsonrpc", json_string("2.0"));
	json_object_set_new(req, "id", td_json_uint(1));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params);
	line = td_json_dump(req, JSON_COMPACT);
	json_decref(req);
	if (!line) {
		fprintf(stderr, "tenderctl: cannot encode the request\n");
		return TD_EXIT_USAGE;
	}
	rc = send_lines(c, line, NULL);
	free(line);
	return rc;
}

/*
 * Sends method(params) (params stolen) and waits for its answer, skipping
 * notifications. Returns TD_EXIT_OK with the new answer's result in *result
 * (a new reference), or an exit code after printing the error.
 */
static int request(struct conn *c, const char *method, json_t *params, json_t **result)
{
	json_t *ans = NULL;
	int rc;

	*result = NULL;
	rc = send_request(c, method, params);
	if (rc != TD_EXIT_OK)
		goto out;
	for (;;) {
		ans = ctl_read_object(c, "connection closed before an answer", &rc);
		if (!ans)
			goto out;
		/* A notification (method, no id) may come before the answer; skip it. */
		if (!(json_object_get(ans, "method") && !json_object_get(ans, "id")))
			break;
		json_decref(ans);
	}
	json_t *e = json_object_get(ans, "error");
	json_t *res = json_object_get(ans, "result");
	if (json_is_object(e)) {
		rc = print_error(e);
	} else if (!res) {
		fprintf(stderr, "tenderctl: tenderd at %s sent an answer with neither result nor error\n", c->path);
		rc = TD_EXIT_UNREACHABLE;
	} else {
		*result = json_incref(res);
	}
out:
	json_decref(ans);
	conn_close(c);
	return rc;
}

/*
 * Sent after a batch that looks like notifications only: the node answers
 * nothing to such a batch, and answers lines in order, so the answer to this
 * request (an unknown method, which changes nothing) coming first means the
 * batch got none.
 */
#define CTL_BATCH_END_ID "tenderctl-end-of-batch"
static const char batch_end[] = "{\"jsonrpc\":\"2.0\",\"id\":\"" CTL_BATCH_END_ID "\",\"method\":\"rpc.end\"}";

/*
 * Sends the JSON-RPC batch batch (stolen) as it is and prints the array of
 * answers on stdout. Returns TD_EXIT_OK, TD_EXIT_REFUSED if an answer is an
 * error (or the node refused the whole batch with one error object), or
 * another exit code after printing why.
 */
static int batch_call(struct conn *c, json_t *batch)
{
	json_t *ans = NULL, *e;
	size_t i, nerr = 0;
	bool silent = json_array_size(batch) > 0; /* every entry an object without an id */
	int rc;

	json_array_foreach(batch, i, e)
		if (!json_is_object(e) || json_object_get(e, "id"))
			silent = false;
	char *line = td_json_dump(batch, JSON_COMPACT);
	json_decref(batch);
	if (!line) {
		fprintf(stderr, "tenderctl: cannot encode the batch\n");
		return TD_EXIT_USAGE;
	}
	rc = send_lines(c, line, silent ? batch_end : NULL);
	free(line);
	if (rc != TD_EXIT_OK)
		goto out;
	for (;;) {
		ans = ctl_read_value(c, "connection closed before an answer", true, &rc);
		if (!ans)
			goto out;
		/* A notification (method, no id) is not an answer; skip it. */
		if (!(json_is_object(ans) && json_object_get(ans, "method") && !json_object_get(ans, "id")))
			break;
		json_decref(ans);
	}
	if (json_is_array(ans)) {
		json_array_foreach(ans, i, e)
			nerr += json_object_get(e, "error") != NULL;
		rc = print_json(stdout, ans);
		if (rc == TD_EXIT_OK && nerr) {
			fprintf(stderr, "tenderctl: %zu of the %zu answers are errors\n", nerr, json_array_size(ans));
			rc = TD_EXIT_REFUSED;
		}
		goto out;
	}
	const json_t *id = json_object_get(ans, "id");
	if (silent && td_json_is_string(id) && strcmp(json_string_value(id), CTL_BATCH_END_ID) == 0) {
		fprintf(stderr, "tenderctl: no answer (the batch holds only notifications)\n");
		rc = TD_EXIT_OK;
	} else if (json_is_object(json_object_get(ans, "error"))) {
		rc = print_error(json_object_get(ans, "error"));
	} else {
		fprintf(stderr, "tenderctl: tenderd at %s answered a batch with a single object\n", c->path);
		rc = TD_EXIT_UNREACHABLE;
	}
out:
	json_decref(ans);
	conn_close(c);
	return rc;
}

/* ---------------------------------------------------------------- list --format table */

/* Display width of code point cp in a terminal: 2 for East Asian wide and fullwidth forms. */
static int cp_width(uint32_t cp)
{
	if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp != 0x303f) ||
	    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
	    (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
	    (cp >= 0x20000 && cp <= 0x3fffd))
		return 2;
	return 1;
}

/* Decodes one UTF-8 sequence at s (valid UTF-8, as jansson strings are); returns its length. */
static size_t utf8_next(const char *s, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	}
	if ((u[0] & 0xe0) == 0xc0 && u[1]) {
		*cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
		return 2;
	}
	if ((u[0] & 0xf0) == 0xe0 && u[1] && u[2]) {
		*cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
		return 3;
	}
	if ((u[0] & 0xf8) == 0xf0 && u[1] && u[2] && u[3]) {
		*cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
		      ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
		return 4;
	}
	*cp = 0xfffd; /* not reached for valid UTF-8 */
	return 1;
}

/* One table cell: its text (malloc'd) and its width in terminal columns. */
struct cell {
	char *text;
	int width;
};

/*
 * Makes a cell of s: control characters become spaces, and text wider than
 * max_cols (0: no limit) is cut at a character boundary to end with "…".
 */
static struct cell make_cell(const char *s, int max_cols)
{
	size_t n = strlen(s), o = 0;
	char *out = td_xmalloc(n + 4);
	int total = 0, width = 0;
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		i += utf8_next(s + i, &cp);
		total += cp_width(cp) ? cp_width(cp) : 1;
	}
	for (size_t i = 0; i < n;) {
		size_t k = utf8_next(s + i, &cp);
		int w = cp_width(cp);
		if (max_cols && total > max_cols && width + (w ? w : 1) > max_cols - 1) {
			memcpy(out + o, "\xe2\x80\xa6", 3);
			o += 3;
			width += 1;
			break;
		}
		if (w == 0) {
			out[o++] = ' ';
			width += 1;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
			width += w;
		}
		i += k;
	}
	out[o] = '\0';
	return (struct cell){ out, width };
}

static const char *str_at(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return td_json_is_string(v) ? json_string_value(v) : NULL;
}

#define TABLE_COLS 6

/* Prints tenders (an array of summaries) as an aligned table with a header line. */
static int print_table(const json_t *tenders)
{
	static const char *const head[TABLE_COLS] = { "OCID", "TITLE", "STATUS", "AGENCY", "VALUE", "DATE" };
	size_t rows = json_array_size(tenders) + 1;
	struct cell *cells = td_xcalloc(rows * TABLE_COLS, sizeof(*cells));
	int widths[TABLE_COLS] = { 0 };

	for (int k = 0; k < TABLE_COLS; k++)
		cells[k] = make_cell(head[k], 0);
	for (size_t r = 1; r < rows; r++) {
		const json_t *t = json_array_get(tenders, r - 1);
		const json_t *value = json_object_get(t, "value"), *period = json_object_get(t, "tenderPeriod");
		const char *ocid = str_at(t, "ocid"), *title = str_at(t, "title"), *status = str_at(t, "status");
		const char *agency = str_at(t, "agency_name"), *date = str_at(period, "startDate");
		const char *currency = str_at(value, "currency");
		size_t alen = 0;
		const char *amount = td_json_number_text(json_object_get(value, "amount"), &alen);
		char vbuf[128] = "", dbuf[11] = "";

		if (amount)
			snprintf(vbuf, sizeof(vbuf), "%.*s%s%s", (int)(alen < 64 ? alen : 64), amount,
				 currency ? " " : "", currency ? currency : "");
		if (!date)
			date = str_at(t, "date");
		if (date)
			snprintf(dbuf, sizeof(dbuf), "%s", date); /* the day: YYYY-MM-DD */
		if (!agency)
			agency = str_at(t, "agency");
		struct cell *row = cells + r * TABLE_COLS;
		row[0] = make_cell(ocid ? ocid : "-", 0);
		row[1] = make_cell(title ? title : "-", CTL_TITLE_COLS);
		row[2] = make_cell(status ? status : "-", 0);
		row[3] = make_cell(agency ? agency : "-", CTL_AGENCY_COLS);
		row[4] = make_cell(vbuf[0] ? vbuf : "-", 0);
		row[5] = make_cell(dbuf[0] ? dbuf : "-", 0);
	}
	for (size_t r = 0; r < rows; r++)
		for (int k = 0; k < TABLE_COLS; k++)
			if (cells[r * TABLE_COLS + k].width > widths[k])
				widths[k] = cells[r * TABLE_COLS + k].width;
	for (size_t r = 0; r < rows; r++) {
		for (int k = 0; k < TABLE_COLS; k++) {
			const struct cell *cl = &cells[r * TABLE_COLS + k];
			bool right = k == 4 && r > 0; /* amounts align on the right */
			int pad = widths[k] - cl->width;
			if (right)
				printf("%*s%s", pad, "", cl->text);
			else if (k == TABLE_COLS - 1)
				printf("%s", cl->text);
			else
				printf("%s%*s", cl->text, pad, "");
			if (k < TABLE_COLS - 1)
				fputs("  ", stdout);
		}
		fputc('\n', stdout);
	}
	for (size_t i = 0; i < rows * TABLE_COLS; i++)
		free(cells[i].text);
	free(cells);
	return TD_EXIT_OK;
}

/* ---------------------------------------------------------------- watch */

static void on_stop_signal(int signum)
{
	(void)signum;
	stop_requested = 1;
}

/*
 * Subscribes with tender.watch and prints every tender.release
 * notification's params as one compact line, flushed. Returns when
 * interrupted (TD_EXIT_OK), on an error answer (TD_EXIT_REFUSED), or when the
 * connection drops or the node ends the stream with TD_RPC_SHUTTING_DOWN
 * (TD_EXIT_UNREACHABLE: try again later).
 */
static int watch(struct conn *c, json_t *params)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rc = send_request(c, "tender.watch", params);
	c->deadline_ms = -1; /* a stream has no end */
	while (rc == TD_EXIT_OK && !stop_requested) {
		json_t *msg = ctl_read_object(c, "the node closed the connection", &rc);
		if (!msg)
			break;
		const json_t *method = json_object_get(msg, "method"), *p = json_object_get(msg, "params");
		const json_t *e = json_object_get(msg, "error");
		if (json_is_object(e)) {
			/* The node ends a stream with "shutting down" as it stops: that is the node going away. */
			uint64_t code = 0;
			const json_t *jc = json_object_get(e, "code");
			size_t clen = 0;
			const char *ct = td_json_number_text(jc, &clen);
			rc = print_error(e);
			if (ct && clen > 1 && ct[0] == '-' && td_parse_u64(ct + 1, clen - 1, &code) &&
			    code == (uint64_t)-TD_RPC_SHUTTING_DOWN)
				rc = TD_EXIT_UNREACHABLE;
		} else if (td_json_is_string(method) && strcmp(json_string_value(method), "tender.release") == 0 &&
			   json_is_object(p)) {
			char *s = td_json_dump(p, JSON_COMPACT);
			if (!s) {
				fprintf(stderr, "tenderctl: cannot print a notification\n");
				rc = TD_EXIT_UNREACHABLE;
			} else {
				printf("%s\n", s);
				free(s);
				if (fflush(stdout) != 0) {
					fprintf(stderr, "tenderctl: writing stdout: %s\n", strerror(errno));
					rc = TD_EXIT_REFUSED;
				}
			}
		}
		/* Anything else (another notification, an acknowledgement) is not a release: skipped. */
		json_decref(msg);
	}
	conn_close(c);
	return stop_requested ? TD_EXIT_OK : rc;
}

/* ---------------------------------------------------------------- commands */

/* Command arguments after the command name: positionals and option values. */
struct args {
	const char *pos[3];
	int npos;
	bool help;
	bool set[O_COUNT];
	const char *val[O_COUNT];
	const char *socket, *timeout; /* global options may also follow the command */
};

static int parse_args(int argc, char **argv, const struct command *cmd, struct args *a)
{
	bool opts = true;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (opts && strcmp(s, "--") == 0) {
			opts = false;
			continue;
		}
		if (!opts || s[0] != '-' || s[1] == '\0') {
			if (a->npos == (int)(sizeof(a->pos) / sizeof(a->pos[0])))
				return usage("%s: too many arguments", cmd->name);
			a->pos[a->npos++] = s;
			continue;
		}
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			a->help = true;
			continue;
		}
		/* --name VALUE or --name=VALUE */
		const char *eq = strchr(s, '='), *inline_val = eq ? eq + 1 : NULL;
		size_t nlen = eq ? (size_t)(eq - s) : strlen(s);
		const char **gval = NULL;
		if (nlen == 8 && strncmp(s, "--socket", 8) == 0)
			gval = &a->socket;
		else if (nlen == 9 && strncmp(s, "--timeout", 9) == 0)
			gval = &a->timeout;
		if (gval) {
			if (!inline_val && i + 1 >= argc)
				return usage("%s: %.*s needs a value", cmd->name, (int)nlen, s);
			*gval = inline_val ? inline_val : argv[++i];
			continue;
		}
		int o = -1;
		for (int k = 0; k < O_COUNT; k++)
			if (strlen(opt_defs[k].name) == nlen && strncmp(opt_defs[k].name, s, nlen) == 0)
				o = k;
		if (o < 0 || !command_takes(cmd, (enum opt)o))
			return usage("%s does not take the option %.*s (tenderctl %s --help lists its options)",
				     cmd->name, (int)nlen, s, cmd->name);
		if (a->set[o])
			return usage("%s: %s given twice", cmd->name, opt_defs[o].name);
		a->set[o] = true;
		if (!opt_defs[o].metavar) {
			if (inline_val)
				return usage("%s: %s takes no value", cmd->name, opt_defs[o].name);
			continue;
		}
		if (!inline_val && i + 1 >= argc)
			return usage("%s: %s needs a value (%s)", cmd->name, opt_defs[o].name, opt_defs[o].metavar);
		a->val[o] = inline_val ? inline_val : argv[++i];
	}
	return TD_EXIT_OK;
}

static json_t *publish_params(const char *kind, const char *ocid, json_t *release, bool wait)
{
	json_t *p = json_object();
	json_object_set_new(p, "kind", json_string(kind));
	if (ocid)
		json_object_set_new(p, "ocid", json_string(ocid));
	json_object_set_new(p, "release", release);
	json_object_set_new(p, "wait", json_boolean(wait));
	return p;
}

/* Makes a JSON string from a command-line argument, which must be UTF-8. */
static json_t *arg_string(const char *what, const char *s, int *rc)
{
	json_t *v = json_string(s);
	if (!v)
		*rc = usage("%s is not valid UTF-8", what);
	return v;
}

/* Sets params[key] to the string value of option o when given; false after a usage error. */
static bool set_string_opt(json_t *params, const char *key, const struct args *a, enum opt o, int *rc)
{
	if (!a->set[o])
		return true;
	if (!a->val[o][0]) {
		*rc = usage("%s needs a non-empty value", opt_defs[o].name);
		return false;
	}
	json_t *v = arg_string(opt_defs[o].name, a->val[o], rc);
	if (!v)
		return false;
	json_object_set_new(params, key, v);
	return true;
}

/* Sets params[key] to the height given with option o, if any; false after a usage error. */
static bool set_height_opt(json_t *params, const char *key, const struct args *a, enum opt o, int *rc)
{
	uint64_t h;
	if (!a->set[o])
		return true;
	if (!parse_u64(a->val[o], &h)) {
		*rc = usage("%s must be a block height (a decimal integer), not '%s'", opt_defs[o].name, a->val[o]);
		return false;
	}
	json_object_set_new(params, key, td_json_uint(h));
	return true;
}

/* Reads an identity file (tenderd id's output): its name and pub_key into params. */
static int identity_params(const char *file, json_t *params, const char *key_member, bool with_name)
{
	json_t *id = load_file(file);
	const json_t *name, *pk;
	uint8_t raw[TD_PUBKEY_LEN];

	if (!id)
		return TD_EXIT_REFUSED;
	name = json_object_get(id, "name");
	pk = json_object_get(id, "pub_key");
	if (!td_json_is_string(pk) || !td_unhex(raw, TD_PUBKEY_LEN, json_string_value(pk), json_string_length(pk)) ||
	    (with_name && (!td_json_is_string(name) || json_string_length(name) == 0))) {
		fprintf(stderr, "tenderctl: %s is not an identity file (tenderd id: name and pub_key)\n", file);
		json_decref(id);
		return TD_EXIT_REFUSED;
	}
	json_object_set_new(params, key_member, json_string(json_string_value(pk)));
	if (with_name)
		json_object_set_new(params, "name", json_string(json_string_value(name)));
	json_decref(id);
	return TD_EXIT_OK;
}

/* gov.propose's params from `propose WHAT ARGS...`. */
static int propose_params(const struct args *a, json_t **out)
{
	static const char *adds[][2] = { { "add-validator", "validator" },
					 { "add-member", "member" },
					 { "add-observer", "observer" } };
	json_t *params = json_object();
	uint8_t raw[TD_PUBKEY_LEN];
	int rc = TD_EXIT_OK;

	*out = NULL;
	if (a->npos == 2 && strcmp(a->pos[0], "remove") == 0) {
		if (!td_unhex(raw, TD_PUBKEY_LEN, a->pos[1], strlen(a->pos[1]))) {
			json_decref(params);
			return usage("propose remove: PUBKEY must be %d hex digits", 2 * TD_PUBKEY_LEN);
		}
		json_object_set_new(params, "action", json_string("remove"));
		json_object_set_new(params, "pub_key", json_string(a->pos[1]));
	} else if (a->npos == 3 && strcmp(a->pos[0], "replace-key") == 0) {
		if (!td_unhex(raw, TD_PUBKEY_LEN, a->pos[1], strlen(a->pos[1]))) {
			json_decref(params);
			return usage("propose replace-key: PUBKEY must be %d hex digits", 2 * TD_PUBKEY_LEN);
		}
		json_object_set_new(params, "action", json_string("replace-key"));
		json_object_set_new(params, "pub_key", json_string(a->pos[1]));
		rc = identity_params(a->pos[2], params, "new_pub_key", false);
	} else {
		int k = -1;
		for (int i = 0; a->npos == 2 && i < 3; i++)
			if (strcmp(a->pos[0], adds[i][0]) == 0)
				k = i;
		if (k < 0) {
			json_decref(params);
			return usage("usage: propose add-validator|add-member|add-observer ID_FILE | remove PUBKEY | "
				     "replace-key PUBKEY ID_FILE");
		}
		json_object_set_new(params, "action", json_string("add"));
		json_object_set_new(params, "role", json_string(adds[k][1]));
		rc = identity_params(a->pos[1], params, "pub_key", true);
	}
	if (rc == TD_EXIT_OK && a->set[O_RATIONALE])
		json_object_set_new(params, "rationale", json_string(a->val[O_RATIONALE]));
	if (rc == TD_EXIT_OK && a->set[O_WAIT])
		json_object_set_new(params, "wait", json_true());
	if (rc != TD_EXIT_OK) {
		json_decref(params);
		return rc;
	}
	*out = params;
	return TD_EXIT_OK;
}

/* Writes v as indented JSON to the file name (or stdout when name is NULL). */
static int write_json(const char *name, const json_t *v)
{
	if (!name)
		return print_json(stdout, v);
	FILE *f = fopen(name, "w");
	if (!f) {
		fprintf(stderr, "tenderctl: %s: %s\n", name, strerror(errno));
		return TD_EXIT_REFUSED;
	}
	int rc = print_json(f, v);
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "tenderctl: %s: %s\n", name, strerror(errno));
		return TD_EXIT_REFUSED;
	}
	return rc;
}

enum output { OUT_RESULT, OUT_LIST, OUT_TABLE };

/* Prints a list answer: the array (json), the whole answer (--with-cursor) or a table. */
static int print_list(json_t *result, enum output out)
{
	json_t *tenders = json_object_get(result, "tenders"), *next = json_object_get(result, "next_cursor");

	if (!json_is_array(tenders)) {
		fprintf(stderr, "tenderctl: the node's tender.list answer has no tenders array\n");
		return TD_EXIT_UNREACHABLE;
	}
	if (td_json_is_string(next))
		fprintf(stderr, "tenderctl: more tenders follow: --cursor %s\n", json_string_value(next));
	if (out == OUT_TABLE)
		return print_table(tenders);
	return print_json(stdout, out == OUT_LIST ? tenders : result);
}

/* Copies from[key] into to[key] when present. */
static void take(json_t *to, const char *key, const json_t *from)
{
	json_t *v = json_object_get(from, key);
	if (v)
		json_object_set_new(to, key, json_deep_copy(v));
}

/*
 * The record package of `compile` around records (stolen), with the metadata
 * of the release package pkg (NULL for a bare array of releases).
 */
static json_t *record_package(const json_t *pkg, json_t *records, const json_t *releases)
{
	json_t *out = json_object(), *uri = json_object_get(pkg, "uri");
	const json_t *r, *latest = NULL;
	int64_t latest_ms = 0, ms;
	size_t i;

	json_object_set_new(out, "uri",
			    td_json_is_string(uri) ? json_deep_copy(uri) :
						     json_string("urn:tenderd:tenderctl-compile"));
	json_object_set_new(out, "version", json_string("1.1"));
	take(out, "extensions", pkg);
	if (json_object_get(pkg, "publishedDate")) {
		take(out, "publishedDate", pkg);
	} else {
		json_array_foreach(releases, i, r) {
			const json_t *d = json_object_get(r, "date");
			if (td_iso_parse(json_string_value(d), json_string_length(d), &ms) &&
			    (!latest || ms > latest_ms)) {
				latest = d;
				latest_ms = ms;
			}
		}
		json_object_set_new(out, "publishedDate", json_deep_copy(latest));
	}
	if (json_object_get(pkg, "publisher"))
		take(out, "publisher", pkg);
	else
		json_object_set_new(out, "publisher", json_pack("{s:s}", "name", "tenderctl compile"));
	take(out, "license", pkg);
	take(out, "publicationPolicy", pkg);
	if (td_json_is_string(uri))
		json_object_set_new(out, "packages", json_pack("[O]", uri));
	json_object_set_new(out, "records", records);
	return out;
}

/*
 * export --proofs DIR: the proof of each ocid of pkg (a release or record
 * package) into DIR/OCID.proof.json, so a publication can be checked record
 * by record.
 */
static int export_proofs(struct conn *c, const json_t *pkg, const char *dir)
{
	const json_t *list = json_object_get(pkg, "releases"), *item;
	json_t *seen = json_object();
	size_t i;
	int rc = TD_EXIT_OK;

	if (!list)
		list = json_object_get(pkg, "records");
	json_array_foreach(list, i, item) {
		const char *ocid = json_string_value(json_object_get(item, "ocid"));
		char path[4096];
		json_t *proof = NULL;
		if (!ocid || json_object_get(seen, ocid))
			continue;
		json_object_set_new(seen, ocid, json_true());
		if (strchr(ocid, '/') || ocid[0] == '.') {
			fprintf(stderr, "tenderctl: ocid %s cannot name a file; its proof is not written\n", ocid);
			rc = TD_EXIT_REFUSED;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.proof.json", dir, ocid);
		if ((rc = request(c, "proof.get", json_pack("{s:s}", "ocid", ocid), &proof)) != TD_EXIT_OK)
			break;
		rc = write_json(path, proof);
		json_decref(proof);
		if (rc != TD_EXIT_OK)
			break;
	}
	if (rc == TD_EXIT_OK)
		fprintf(stderr, "tenderctl: %zu proofs written to %s\n", json_object_size(seen), dir);
	json_decref(seen);
	return rc;
}

/* tenderctl verify FILE --genesis GENESIS: offline, no connection. */
static int verify_cmd(const struct args *a)
{
	char err[TD_ERRMSG_MAX], ts[32], hex[2 * TD_PUBKEY_LEN + 1];
	struct td_genesis g;
	struct td_proof_result r;
	json_t *proof;
	int rc;

	if (a->npos != 1 || !a->set[O_GENESIS] || !*a->val[O_GENESIS])
		return usage("usage: verify FILE --genesis GENESIS");
	FILE *gf = fopen(a->val[O_GENESIS], "r");
	char *gtext = NULL;
	size_t gcap = 0, glen = 0;
	if (!gf) {
		fprintf(stderr, "tenderctl: %s: %s\n", a->val[O_GENESIS], strerror(errno));
		return TD_EXIT_REFUSED;
	}
	glen = (size_t)getdelim(&gtext, &gcap, '\0', gf);
	fclose(gf);
	rc = gtext && glen != (size_t)-1 ? td_genesis_parse(&g, gtext, glen, err, sizeof(err)) : TD_EINVAL;
	if (rc != 0 && (!gtext || glen == (size_t)-1))
		snprintf(err, sizeof(err), "cannot read it");
	free(gtext);
	if (rc != 0) {
		fprintf(stderr, "tenderctl: %s: %s\n", a->val[O_GENESIS], err);
		return TD_EXIT_REFUSED;
	}
	proof = load_file(a->pos[0]);
	if (!proof) {
		td_genesis_free(&g);
		return TD_EXIT_REFUSED;
	}
	rc = td_proof_verify(proof, &g, &r, err, sizeof(err));
	json_decref(proof);
	if (rc != 0) {
		printf("REFUSED: %s\n", err);
		td_genesis_free(&g);
		return TD_EXIT_REFUSED;
	}
	int v = td_genesis_find(&g, r.agency);
	td_hex(hex, r.agency, TD_PUBKEY_LEN);
	td_time_iso(ts, r.time_ms);
	printf("valid: release %s of %s (%s), published by %s (key %s),\n", r.release_id, r.ocid, td_kind_name(r.kind),
	       v >= 0 ? g.v[v].name : "an agency outside the validators", hex);
	printf("committed at height %llu at %s, signed by %u of %u validators:", (unsigned long long)r.height, ts,
	       r.signers, g.n);
	for (uint32_t i = 0; i < r.signers; i++)
		printf("%s %s", i ? "," : "", r.signer_index[i] < g.n ? g.v[r.signer_index[i]].name : "?");
	printf(";\nthe latest of the %u releases in this proof, each naming the one before it from the tender\n"
	       "that opened %s. (A proof cannot show that no later release exists.)\n",
	       r.releases, r.ocid);
	printf("chain %s, genesis ", g.chain_id);
	td_hex(hex, g.hash, TD_HASH_LEN);
	printf("%s\n", hex);
	td_genesis_free(&g);
	return TD_EXIT_OK;
}

/* tenderctl compile [--versioned] FILE|-: offline, no connection. */
static int compile(const struct args *a)
{
	char err[TD_ERRMSG_MAX];
	const char *shown;
	json_t *in, *pkg = NULL, *records, *out;
	const json_t *releases;
	int rc;

	if (a->npos != 1)
		return usage("usage: compile [--versioned] FILE|- [--out FILE]");
	if (a->set[O_OUT] && !*a->val[O_OUT])
		return usage("compile: --out needs a file name");
	shown = strcmp(a->pos[0], "-") == 0 ? "stdin" : a->pos[0];
	in = load_file_max(a->pos[0], CTL_COMPILE_MAX);
	if (!in)
		return TD_EXIT_REFUSED;
	if (json_is_object(in)) {
		pkg = in;
		releases = json_object_get(in, "releases");
	} else {
		releases = in;
	}
	if (!json_is_array(releases) || json_array_size(releases) == 0) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown,
			pkg ? "a release package needs a non-empty \"releases\" array" :
			      "not a release package nor a non-empty array of releases");
		json_decref(in);
		return TD_EXIT_REFUSED;
	}
	records = td_merge_records(releases, a->set[O_VERSIONED], err, sizeof(err));
	if (!records) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown, err);
		json_decref(in);
		return TD_EXIT_REFUSED;
	}
	out = record_package(pkg, records, releases);
	rc = write_json(a->set[O_OUT] ? a->val[O_OUT] : NULL, out);
	json_decref(out);
	json_decref(in);
	return rc;
}

/* ---------------------------------------------------------------- export --format csv */

#define CTL_CSV_PAGE 1000 /* tenders per tender.list page */

/*
 * Writes s[0..n) as one RFC 4180 field: as it is, or between double quotes
 * (with each quote doubled) when it holds a comma, a quote, CR or LF.
 */
static void csv_field(FILE *f, const char *s, size_t n)
{
	bool quote = false;
	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (!quote) {
		fwrite(s, 1, n, f);
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fputc('"', f);
		fputc(s[i], f);
	}
	fputc('"', f);
}

static void csv_str(FILE *f, const char *s)
{
	csv_field(f, s ? s : "", s ? strlen(s) : 0);
}

/*
 * One CSV row per tender summary of list --format table, in the same
 * columns: ocid, title, status, agency (name, else key), the amount as
 * written, its currency, and the date (tender period start, else the
 * tender's date, as written). Missing values are empty fields.
 */
static void csv_row(FILE *f, const json_t *t)
{
	const json_t *value = json_object_get(t, "value"), *period = json_object_get(t, "tenderPeriod");
	const char *agency = str_at(t, "agency_name"), *date = str_at(period, "startDate");
	size_t alen = 0;
	const char *amount = td_json_number_text(json_object_get(value, "amount"), &alen);

	csv_str(f, str_at(t, "ocid"));
	fputc(',', f);
	csv_str(f, str_at(t, "title"));
	fputc(',', f);
	csv_str(f, str_at(t, "status"));
	fputc(',', f);
	csv_str(f, agency ? agency : str_at(t, "agency"));
	fputc(',', f);
	csv_field(f, amount ? amount : "", amount ? alen : 0);
	fputc(',', f);
	csv_str(f, str_at(value, "currency"));
	fputc(',', f);
	csv_str(f, date ? date : str_at(t, "date"));
	fputs("\r\n", f);
}

/*
 * tenderctl export --format csv [--out FILE]: every tender, newest first,
 * page by page (tender.list, CTL_CSV_PAGE at a time, following next_cursor),
 * as RFC 4180 CSV with a header row and CRLF line ends.
 */
static int export_csv(struct conn *c, const char *out_name)
{
	FILE *f = stdout;
	json_t *cursor = NULL, *result = NULL;
	int rc = TD_EXIT_OK;
	size_t i;
	const json_t *t;

	if (out_name && !(f = fopen(out_name, "wb"))) {
		fprintf(stderr, "tenderctl: %s: %s\n", out_name, strerror(errno));
		return TD_EXIT_REFUSED;
	}
	fputs("ocid,title,status,agency,amount,currency,date\r\n", f);
	for (;;) {
		json_t *params = json_pack("{s:o}", "limit", td_json_uint(CTL_CSV_PAGE));
		if (cursor)
			json_object_set(params, "cursor", cursor);
		rc = request(c, "tender.list", params, &result);
		if (rc != TD_EXIT_OK)
			break;
		const json_t *tenders = json_object_get(result, "tenders"),
			     *next = json_object_get(result, "next_cursor");
		if (!json_is_array(tenders)) {
			fprintf(stderr, "tenderctl: the node's tender.list answer has no tenders array\n");
			rc = TD_EXIT_UNREACHABLE;
			break;
		}
		json_array_foreach(tenders, i, t)
			csv_row(f, t);
		json_decref(cursor);
		cursor = td_json_is_string(next) ? json_incref((json_t *)next) : NULL;
		json_decref(result);
		result = NULL;
		if (!cursor)
			break;
	}
	json_decref(result);
	json_decref(cursor);
	if (fflush(f) != 0 || ferror(f)) {
		fprintf(stderr, "tenderctl: %s: %s\n", out_name ? out_name : "stdout", strerror(errno));
		rc = rc == TD_EXIT_OK ? TD_EXIT_REFUSED : rc;
	}
	if (out_name && fclose(f) != 0 && rc == TD_EXIT_OK) {
		fprintf(stderr, "tenderctl: %s: %s\n", out_name, strerror(errno));
		rc = TD_EXIT_REFUSED;
	}
	return rc;
}

/* ---------------------------------------------------------------- import */

#define CTL_IMPORT_WINDOW 1000  /* publishes in flight on one connection (the node reads 1024 pending per client) */
#define CTL_LOOKUP_WINDOW 64    /* tender.get requests in flight */
#define CTL_BAR_MS 200          /* a terminal's progress bar is redrawn at most this often */
#define CTL_LINE_MS 2000        /* a plain progress line at most this often */
#define CTL_FULL_BACKOFF_MS 200 /* pause after a mempool-full refusal before sending again */
#define CTL_BAR_COLS 30         /* width of the bar itself */

enum imp_state { IMP_PENDING, IMP_IMPORTED, IMP_SKIPPED, IMP_REFUSED, IMP_STATES };

/* One release of the package; its strings are borrowed from the package tree. */
struct imp_item {
	const json_t *rel;
	const char *ocid, *id, *date; /* NULL until checked present */
	size_t date_len;
	int64_t date_ms;
	size_t index; /* position in the package */
	size_t rank;  /* position in date order */
	size_t group; /* its ocid's group (PENDING items after grouping) */
	enum td_kind kind;
	enum imp_state state;
	bool by_node; /* refused by the node when published: a later look at the ledger may find it there */
	char *reason; /* why it was refused (owned) */
};

/* The releases of one ocid to publish: order[first .. first + n), in date order. */
struct imp_group {
	size_t first, n;
	size_t next; /* the next of them to publish: an index into order, first + n when none is left */
	bool check;  /* to be looked up on the ledger */
	bool exists, cancelled, ours; /* what the ledger holds (for the dry run) */
};

struct import {
	struct conn *c;
	const char *shown; /* the package's name as shown */
	bool dry_run, tty;
	struct imp_item *items; /* every release of the package */
	size_t n;
	struct imp_item **order; /* the PENDING items after the checks, by ocid, then date */
	size_t norder;
	struct imp_group *groups;
	size_t ngroups;
	struct imp_item **heap; /* the next release of each idle group, least rank first */
	size_t nheap;
	char prefix[TD_OCID_MAX + 1]; /* the chain's ocid prefix; "" when the node does not tell it */
	char *agency;                 /* the node's name, the buyer a release without one gets (owned) */
	char *pub_key;                /* the node's key in hex (owned) */
	size_t count[IMP_STATES];
	size_t answered; /* publishes the node answered */
	size_t retries;  /* publishes sent again after a mempool-full refusal */
	int64_t t0, last_draw;
};

static void imp_refuse(struct import *im, struct imp_item *it, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Marks it refused for the reason given (replacing an earlier one). */
static void imp_refuse(struct import *im, struct imp_item *it, const char *fmt, ...)
{
	va_list ap;
	char buf[TD_ERRMSG_MAX * 2];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(it->reason);
	it->reason = td_xmalloc(strlen(buf) + 1);
	memcpy(it->reason, buf, strlen(buf) + 1);
	im->count[it->state]--;
	it->state = IMP_REFUSED;
	im->count[IMP_REFUSED]++;
}

static void imp_set(struct import *im, struct imp_item *it, enum imp_state s)
{
	im->count[it->state]--;
	it->state = s;
	im->count[s]++;
	free(it->reason);
	it->reason = NULL;
}

/* The string s[key] when it is a non-empty string, else NULL. */
static const char *nonempty_at(const json_t *obj, const char *key)
{
	const char *s = str_at(obj, key);
	return s && *s ? s : NULL;
}

/* Writes tag (an array of strings, or anything else) into buf as [a, b] for a message. */
static void tag_text(char *buf, size_t cap, const json_t *tag)
{
	size_t i, o = 0;
	const json_t *t;

	if (!json_is_array(tag)) {
		snprintf(buf, cap, "%s", tag ? "(not an array)" : "(none)");
		return;
	}
	o += (size_t)snprintf(buf, cap, "[");
	json_array_foreach(tag, i, t) {
		if (o >= cap)
			break;
		o += (size_t)snprintf(buf + o, cap - o, "%s%.40s", i ? ", " : "",
				      td_json_is_string(t) ? json_string_value(t) : "?");
	}
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
}

/*
 * The kind a release's tag maps to: exactly one tag, tender,
 * tenderAmendment, tenderCancellation or award (as tenderctl publish, amend
 * and cancel publish them). 0 for anything else, which is not guessed.
 */
static enum td_kind imp_kind(const json_t *tag)
{
	const json_t *t = json_array_get(tag, 0);

	if (!json_is_array(tag) || json_array_size(tag) != 1 || !td_json_is_string(t))
		return 0;
	return td_kind_parse(json_string_value(t), json_string_length(t));
}

/*
 * The checks that need no ledger, in the order a reader fixes them: an
 * object with an ocid, an id and a date; the chain's prefix; a tag that
 * maps to a kind; and the release the node would build from it validates
 * (the node's own code, td_release_build_dated, with the node's name as the
 * buyer it adds). Refuses it with the reason, or leaves it PENDING.
 */
static void imp_check(struct import *im, struct imp_item *it)
{
	const json_t *r = it->rel, *d;
	char err[TD_ERRMSG_MAX], tags[128];
	json_t *full;

	if (!json_is_object(r)) {
		imp_refuse(im, it, "not a JSON object");
		return;
	}
	it->ocid = nonempty_at(r, "ocid");
	if (!it->ocid) {
		imp_refuse(im, it, "no ocid");
		return;
	}
	it->id = nonempty_at(r, "id");
	if (!it->id || strlen(it->id) > TD_ID_MAX) {
		it->id = NULL;
		imp_refuse(im, it, "no release id of 1..%d bytes (the id is what makes an import resumable)",
			   TD_ID_MAX);
		return;
	}
	d = json_object_get(r, "date");
	if (!td_json_is_string(d) || !td_iso_parse(json_string_value(d), json_string_length(d), &it->date_ms)) {
		imp_refuse(im, it, "date: %s",
			   d ? "not an ISO 8601 date-time with seconds and a zone (2020-03-09T09:00:00+09:00)" :
			       "missing (releases are imported in date order, each with its own date)");
		return;
	}
	it->date = json_string_value(d);
	it->date_len = json_string_length(d);
	if (im->prefix[0] && strncmp(it->ocid, im->prefix, strlen(im->prefix)) != 0) {
		imp_refuse(im, it, "ocid %s does not start with the chain's prefix %s: another publisher's process",
			   it->ocid, im->prefix);
		return;
	}
	it->kind = imp_kind(json_object_get(r, "tag"));
	if (!it->kind) {
		tag_text(tags, sizeof(tags), json_object_get(r, "tag"));
		imp_refuse(im, it,
			   "tag %s: not one tender, tenderAmendment, tenderCancellation or award tag (planning and "
			   "contract releases have no place on this ledger)",
			   tags);
		return;
	}
	full = td_release_build_dated(r, it->kind, NULL, 0, it->date, it->date_len, im->agency, err, sizeof(err));
	if (!full) {
		imp_refuse(im, it, "invalid: %s", err);
		return;
	}
	json_decref(full);
}

static int cmp_date(const void *pa, const void *pb)
{
	const struct imp_item *a = *(const struct imp_item *const *)pa, *b = *(const struct imp_item *const *)pb;
	if (a->date_ms != b->date_ms)
		return a->date_ms < b->date_ms ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int cmp_ocid_id(const void *pa, const void *pb)
{
	const struct imp_item *a = *(const struct imp_item *const *)pa, *b = *(const struct imp_item *const *)pb;
	int k = strcmp(a->ocid, b->ocid);
	if (k == 0)
		k = strcmp(a->id, b->id);
	if (k == 0)
		k = a->rank < b->rank ? -1 : a->rank > b->rank;
	return k;
}

static int cmp_ocid_rank(const void *pa, const void *pb)
{
	const struct imp_item *a = *(const struct imp_item *const *)pa, *b = *(const struct imp_item *const *)pb;
	int k = strcmp(a->ocid, b->ocid);
	if (k == 0)
		k = a->rank < b->rank ? -1 : a->rank > b->rank;
	return k;
}

/*
 * Ranks the checked releases by date (package order among equal dates),
 * refuses a release id the package repeats for an ocid (the first by date
 * stays), and groups the rest by ocid in date order.
 */
static void imp_group(struct import *im)
{
	struct imp_item **v = td_xcalloc(im->n ? im->n : 1, sizeof(*v));
	size_t k = 0, i;

	for (i = 0; i < im->n; i++)
		if (im->items[i].state == IMP_PENDING)
			v[k++] = &im->items[i];
	qsort(v, k, sizeof(*v), cmp_date);
	for (i = 0; i < k; i++)
		v[i]->rank = i;
	qsort(v, k, sizeof(*v), cmp_ocid_id);
	for (i = 1; i < k; i++)
		if (strcmp(v[i]->ocid, v[i - 1]->ocid) == 0 && strcmp(v[i]->id, v[i - 1]->id) == 0)
			imp_refuse(im, v[i], "the package repeats release %s of %s (#%zu in the file)", v[i]->id,
				   v[i]->ocid, v[i - 1]->index + 1);
	im->norder = 0;
	for (i = 0; i < k; i++)
		if (v[i]->state == IMP_PENDING)
			v[im->norder++] = v[i];
	qsort(v, im->norder, sizeof(*v), cmp_ocid_rank);
	im->order = v;
	im->groups = td_xcalloc(im->norder ? im->norder : 1, sizeof(*im->groups));
	im->ngroups = 0;
	for (i = 0; i < im->norder; i++) {
		if (i == 0 || strcmp(v[i]->ocid, v[i - 1]->ocid) != 0) {
			struct imp_group *g = &im->groups[im->ngroups++];
			g->first = g->next = i;
			g->check = true;
		}
		v[i]->group = im->ngroups - 1;
		im->groups[im->ngroups - 1].n++;
	}
}

/* Appends line and a newline to the growing buffer *buf (*len used, *cap allocated). */
static void buf_line(char **buf, size_t *len, size_t *cap, const char *line)
{
	size_t n = strlen(line);
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = td_xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, line, n);
	(*buf)[*len + n] = '\n';
	*len += n + 1;
}

/* The request method(params) with the numeric id, as one compact line (params stolen; malloc'd). */
static char *request_line(uint64_t id, const char *method, json_t *params)
{
	json_t *req = json_object();
	char *line;

	json_object_set_new(req, "jsonrpc", json_string("2.0"));
	json_object_set_new(req, "id", td_json_uint(id));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params);
	line = td_json_dump(req, JSON_COMPACT);
	json_decref(req);
	if (!line) {
		fprintf(stderr, "tenderctl: cannot encode a request\n");
		abort(); /* a tree from td_json_load always prints: out of memory */
	}
	return line;
}

/* Sends buf[0..len) (pipelined requests), the deadline counting from now. */
static int pipe_send(struct conn *c, const char *buf, size_t len)
{
	c->deadline_ms = c->timeout_s ? now_ms() + (int64_t)c->timeout_s * 1000 : -1;
	return ctl_send(c, buf, len);
}

/*
 * Reads the answer to the request with the numeric id want (the node
 * answers a connection's lines in order). Returns it with *rc TD_EXIT_OK,
 * or NULL with *rc an exit code after printing why.
 */
static json_t *pipe_answer(struct conn *c, uint64_t want, int *rc)
{
	uint64_t got = 0;
	size_t len = 0;
	json_t *ans;
	const char *t;

	c->deadline_ms = c->timeout_s ? now_ms() + (int64_t)c->timeout_s * 1000 : -1;
	ans = ctl_read_object(c, "connection closed before an answer", rc);
	if (!ans)
		return NULL;
	t = td_json_number_text(json_object_get(ans, "id"), &len);
	if (!t || !td_parse_u64(t, len, &got) || got != want ||
	    (!json_object_get(ans, "result") && !json_is_object(json_object_get(ans, "error")))) {
		fprintf(stderr, "tenderctl: tenderd at %s answered out of order (expected id %llu)\n", c->path,
			(unsigned long long)want);
		json_decref(ans);
		*rc = TD_EXIT_UNREACHABLE;
		return NULL;
	}
	return ans;
}

/* The code of a JSON-RPC error object, 0 if it has none. */
static long error_code(const json_t *e)
{
	size_t len = 0;
	uint64_t v = 0;
	const char *t = td_json_number_text(json_object_get(e, "code"), &len);

	if (!t || len < 2 || t[0] != '-' || !td_parse_u64(t + 1, len - 1, &v) || v > 100000)
		return 0;
	return -(long)v;
}

static const char *error_message(const json_t *e)
{
	const char *m = str_at(e, "message");
	return m ? m : "error without a message";
}

/*
 * Looks up each group marked check on the ledger (tender.get, pipelined):
 * a release of it whose id the ledger holds becomes SKIPPED (a PENDING one,
 * or one the node refused, which a record of an earlier run may have beaten
 * to the ledger); the group learns whether the tender exists, is cancelled
 * and is this node's. Returns TD_EXIT_OK or an exit code after printing why.
 */
static int imp_lookup(struct import *im)
{
	size_t sent = 0, done = 0, len = 0, cap = 0, ng = im->ngroups;
	char *buf = NULL;
	int rc = TD_EXIT_OK;

	while (done < ng && rc == TD_EXIT_OK) {
		len = 0;
		for (; sent < ng && sent - done < CTL_LOOKUP_WINDOW; sent++) {
			struct imp_group *g = &im->groups[sent];
			if (!g->check)
				continue;
			json_t *p = json_pack("{s:s}", "ocid", im->order[g->first]->ocid);
			char *line = request_line(sent, "tender.get", p);
			buf_line(&buf, &len, &cap, line);
			free(line);
		}
		if (len && (rc = pipe_send(im->c, buf, len)) != TD_EXIT_OK)
			break;
		for (; done < sent; done++) {
			struct imp_group *g = &im->groups[done];
			if (!g->check)
				continue;
			json_t *ans = pipe_answer(im->c, done, &rc);
			if (!ans)
				break;
			const json_t *res = json_object_get(ans, "result"), *e = json_object_get(ans, "error");
			g->check = false;
			if (e && error_code(e) != TD_RPC_NOT_FOUND) {
				fprintf(stderr, "tenderctl: tender.get %s: ", im->order[g->first]->ocid);
				rc = print_error(e);
				json_decref(ans);
				break;
			}
			const json_t *rels = json_object_get(res, "releases"), *r;
			const char *status =
				str_at(json_object_get(json_object_get(res, "compiled"), "tender"), "status");
			const char *owner = str_at(json_array_get(rels, 0), "agency");
			size_t i;
			g->exists = json_array_size(rels) > 0;
			g->cancelled = status && strcmp(status, "cancelled") == 0;
			g->ours = owner && im->pub_key && strcmp(owner, im->pub_key) == 0;
			json_array_foreach(rels, i, r) {
				const char *id = str_at(json_object_get(r, "release"), "id");
				for (size_t k = g->first; id && k < g->first + g->n; k++) {
					struct imp_item *it = im->order[k];
					if ((it->state == IMP_PENDING || (it->state == IMP_REFUSED && it->by_node)) &&
					    strcmp(it->id, id) == 0)
						imp_set(im, it, IMP_SKIPPED);
				}
			}
			json_decref(ans);
		}
	}
	free(buf);
	return rc;
}

/* Formats seconds as H:MM:SS or M:SS into buf. */
static void fmt_secs(char *buf, size_t cap, double s)
{
	unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%lu:%02lu", t / 60, t % 60);
}

/*
 * Shows progress on stderr: on a terminal a bar redrawn in place (records
 * done, rate, time left), otherwise a plain line now and then; final draws
 * the last state (and ends the bar's line).
 */
static void imp_progress(struct import *im, bool final)
{
	int64_t now = now_ms();
	size_t done = im->n - im->count[IMP_PENDING];
	double secs = (double)(now - im->t0) / 1000.0;
	double rate = secs > 0.001 ? (double)im->answered / secs : 0;
	char left[32] = "?";

	if (!final && now - im->last_draw < (im->tty ? CTL_BAR_MS : CTL_LINE_MS))
		return;
	im->last_draw = now;
	if (im->count[IMP_PENDING] == 0)
		fmt_secs(left, sizeof(left), 0);
	else if (secs >= 1 && rate > 0) /* before a second, the first blocks say little of the rate */
		fmt_secs(left, sizeof(left), (double)im->count[IMP_PENDING] / rate);
	if (im->tty) {
		char bar[CTL_BAR_COLS + 1];
		size_t full = im->n ? done * CTL_BAR_COLS / im->n : CTL_BAR_COLS;
		for (size_t i = 0; i < CTL_BAR_COLS; i++)
			bar[i] = i < full ? '#' : '.';
		bar[CTL_BAR_COLS] = '\0';
		fprintf(stderr, "\rimport [%s] %zu/%zu  %.0f/s  %s left\x1b[K%s", bar, done, im->n, rate, left,
			final ? "\n" : "");
	} else {
		fprintf(stderr,
			"import: %zu/%zu releases done (%zu imported, %zu skipped, %zu refused), %.0f/s, %s left\n",
			done, im->n, im->count[IMP_IMPORTED], im->count[IMP_SKIPPED], im->count[IMP_REFUSED], rate,
			left);
	}
	fflush(stderr);
}

/* Heap of items by rank: the earliest release ready to go first. */
static void heap_push(struct import *im, struct imp_item *it)
{
	size_t i = im->nheap++;
	while (i > 0 && im->heap[(i - 1) / 2]->rank > it->rank) {
		im->heap[i] = im->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	im->heap[i] = it;
}

static struct imp_item *heap_pop(struct import *im)
{
	struct imp_item *top = im->heap[0], *last = im->heap[--im->nheap];
	size_t i = 0;

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l >= im->nheap)
			break;
		m = l + 1 < im->nheap && im->heap[l + 1]->rank < im->heap[l]->rank ? l + 1 : l;
		if (im->heap[m]->rank >= last->rank)
			break;
		im->heap[i] = im->heap[m];
		i = m;
	}
	if (im->nheap)
		im->heap[i] = last;
	return top;
}

/* Moves group g to its next PENDING release and makes it ready, if there is one. */
static void group_next(struct import *im, struct imp_group *g)
{
	while (g->next < g->first + g->n && im->order[g->next]->state != IMP_PENDING)
		g->next++;
	if (g->next < g->first + g->n)
		heap_push(im, im->order[g->next]);
}

/*
 * Publishes the PENDING releases, each with "wait": the next release of an
 * ocid goes once the one before it is committed (the node checks an
 * amendment or an award against the committed ledger), and of the releases
 * ready to go the earliest goes first. Up to CTL_IMPORT_WINDOW are in flight,
 * pipelined on one connection. A mempool-full refusal is retried after a
 * pause. Returns TD_EXIT_OK or an exit code after printing why.
 */
static int imp_publish(struct import *im)
{
	struct imp_item **fifo = td_xcalloc(CTL_IMPORT_WINDOW, sizeof(*fifo));
	size_t head = 0, inflight = 0, len = 0, cap = 0;
	int64_t hold_until = 0;
	char *buf = NULL;
	int rc = TD_EXIT_OK;

	im->heap = td_xcalloc(im->ngroups ? im->ngroups : 1, sizeof(*im->heap));
	for (size_t g = 0; g < im->ngroups; g++)
		group_next(im, &im->groups[g]);
	im->t0 = im->last_draw = now_ms();
	while (rc == TD_EXIT_OK && (inflight || im->nheap)) {
		len = 0;
		while (inflight < CTL_IMPORT_WINDOW && im->nheap && now_ms() >= hold_until) {
			struct imp_item *it = heap_pop(im);
			json_t *p = json_object();
			json_object_set_new(p, "kind", json_string(td_kind_name(it->kind)));
			json_object_set(p, "release", (json_t *)it->rel);
			json_object_set_new(p, "date", json_stringn(it->date, it->date_len));
			json_object_set_new(p, "wait", json_true());
			char *line = request_line(it->index, "tender.publish", p);
			buf_line(&buf, &len, &cap, line);
			free(line);
			fifo[(head + inflight++) % CTL_IMPORT_WINDOW] = it;
		}
		if (len && (rc = pipe_send(im->c, buf, len)) != TD_EXIT_OK)
			break;
		if (!inflight) {
			/* Only releases held back by a full mempool: wait, then send again. */
			int64_t wait = hold_until - now_ms();
			if (wait > 0)
				poll(NULL, 0, (int)wait);
			continue;
		}
		struct imp_item *it = fifo[head];
		json_t *ans = pipe_answer(im->c, it->index, &rc);
		if (!ans)
			break;
		head = (head + 1) % CTL_IMPORT_WINDOW;
		inflight--;
		im->answered++;
		struct imp_group *g = &im->groups[it->group];
		const json_t *e = json_object_get(ans, "error");
		if (!e) {
			imp_set(im, it, IMP_IMPORTED);
		} else if (error_code(e) == TD_RPC_MEMPOOL_FULL) {
			hold_until = now_ms() + CTL_FULL_BACKOFF_MS;
			im->answered--;
			im->retries++;
		} else if (error_code(e) == TD_RPC_SHUTTING_DOWN) {
			print_error(e);
			rc = TD_EXIT_UNREACHABLE;
		} else {
			long code = error_code(e);
			imp_refuse(im, it, "%s (code %ld)", error_message(e), code);
			it->by_node = code == TD_RPC_DUPLICATE || code == TD_RPC_RULE;
			g->check = g->check || it->by_node;
		}
		json_decref(ans);
		group_next(im, g);
		imp_progress(im, false);
	}
	free(buf);
	free(fifo);
	return rc;
}

/*
 * The dry run's stand-in for the node's lifecycle rules, from what the
 * ledger holds and what the package would publish before: a tender needs a
 * new ocid; an amendment, a cancellation or an award a tender of this
 * agency that is not cancelled.
 */
static void imp_dry_lifecycle(struct import *im)
{
	for (size_t gi = 0; gi < im->ngroups; gi++) {
		struct imp_group *g = &im->groups[gi];
		bool exists = g->exists, cancelled = g->cancelled, ours = g->ours || !g->exists;
		for (size_t k = g->first; k < g->first + g->n; k++) {
			struct imp_item *it = im->order[k];
			if (it->state != IMP_PENDING)
				continue;
			if (it->kind == TD_KIND_TENDER) {
				if (exists) {
					imp_refuse(im, it, "tender %s already exists", it->ocid);
					continue;
				}
				exists = ours = true;
				continue;
			}
			if (!exists)
				imp_refuse(im, it, "tender %s does not exist: a %s needs a published tender", it->ocid,
					   td_kind_name(it->kind));
			else if (!ours)
				imp_refuse(im, it, "only the agency that published tender %s may publish its %s",
					   it->ocid, td_kind_name(it->kind));
			else if (cancelled)
				imp_refuse(im, it, "tender %s is cancelled: no %s may follow", it->ocid,
					   td_kind_name(it->kind));
			else if (it->kind == TD_KIND_CANCELLATION)
				cancelled = true;
		}
	}
}

/* Prints the summary on stdout: the counts, then each refusal in package order. */
static void imp_summary(const struct import *im, double secs)
{
	printf("%s %s: %zu release%s%s\n", im->dry_run ? "dry run of" : "import of", im->shown, im->n,
	       im->n == 1 ? "" : "s", im->dry_run ? ", nothing published" : "");
	if (im->dry_run)
		printf("would import: %zu\n", im->count[IMP_PENDING]);
	else
		printf("imported: %zu\n", im->count[IMP_IMPORTED]);
	printf("skipped: %zu (already on the ledger)\n", im->count[IMP_SKIPPED]);
	printf("refused: %zu\n", im->count[IMP_REFUSED]);
	if (!im->dry_run && im->count[IMP_PENDING])
		printf("not done: %zu (the import stopped: run it again to resume)\n", im->count[IMP_PENDING]);
	for (size_t i = 0; i < im->n; i++) {
		const struct imp_item *it = &im->items[i];
		if (it->state != IMP_REFUSED)
			continue;
		if (it->id)
			printf("  #%zu release %s of %s: %s\n", i + 1, it->id, it->ocid, it->reason);
		else if (it->ocid)
			printf("  #%zu (%s): %s\n", i + 1, it->ocid, it->reason);
		else
			printf("  #%zu: %s\n", i + 1, it->reason);
	}
	if (!im->dry_run && im->answered && secs >= 0.1)
		printf("rate: %.0f releases/s (%zu published in %.1f s)\n", (double)im->answered / secs, im->answered,
		       secs);
	else if (!im->dry_run && im->answered)
		printf("published: %zu in %.1f s\n", im->answered, secs);
	if (im->retries)
		printf("mempool full: %zu publishes sent again after a pause\n", im->retries);
}

/* Copies the string s[key] (NULL when absent). */
static char *dup_at(const json_t *obj, const char *key)
{
	const char *s = str_at(obj, key);
	char *d = NULL;
	if (s) {
		d = td_xmalloc(strlen(s) + 1);
		memcpy(d, s, strlen(s) + 1);
	}
	return d;
}

/* tenderctl import PACKAGE.json [--dry-run]. */
static int import_cmd(struct conn *c, const struct args *a, bool timeout_set)
{
	struct import im = { .c = c, .dry_run = a->set[O_DRY_RUN], .tty = isatty(STDERR_FILENO) == 1 };
	json_t *in = NULL, *status = NULL;
	const json_t *releases;
	int rc;

	if (a->npos != 1)
		return usage("usage: import PACKAGE.json [--dry-run]");
	if (!timeout_set)
		c->timeout_s = CTL_TIMEOUT_DEFAULT;
	im.shown = strcmp(a->pos[0], "-") == 0 ? "stdin" : a->pos[0];
	in = load_file_max(a->pos[0], CTL_COMPILE_MAX);
	if (!in)
		return TD_EXIT_REFUSED;
	releases = json_is_object(in) ? json_object_get(in, "releases") : in;
	if (!json_is_array(releases)) {
		fprintf(stderr, "tenderctl: %s: not a release package (an object with a \"releases\" array)%s\n",
			im.shown, json_is_object(in) ? "" : " nor an array of releases");
		rc = TD_EXIT_REFUSED;
		goto out;
	}
	/* Who we publish as, and the chain's ocid prefix when the node tells it. */
	rc = request(c, "status", json_object(), &status);
	if (rc != TD_EXIT_OK)
		goto out;
	const json_t *node = json_object_get(status, "node");
	const char *prefix = str_at(status, "ocid_prefix");
	if (prefix)
		snprintf(im.prefix, sizeof(im.prefix), "%s", prefix);
	else
		fprintf(stderr, "tenderctl: the node's status does not give the chain's ocid prefix: the node checks "
				"it as it publishes\n");
	im.agency = dup_at(node, "name");
	im.pub_key = dup_at(node, "pub_key");
	if (!im.dry_run && !json_is_true(json_object_get(node, "validator"))) {
		fprintf(stderr, "tenderctl: the node at %s is not a validator of its chain: it cannot publish\n",
			c->path);
		rc = TD_EXIT_REFUSED;
		goto out;
	}

	im.n = json_array_size(releases);
	im.items = td_xcalloc(im.n ? im.n : 1, sizeof(*im.items));
	im.count[IMP_PENDING] = im.n;
	for (size_t i = 0; i < im.n; i++) {
		im.items[i].rel = json_array_get(releases, i);
		im.items[i].index = i;
		imp_check(&im, &im.items[i]);
	}
	imp_group(&im);

	c->deadline_ms = c->timeout_s ? now_ms() + (int64_t)c->timeout_s * 1000 : -1;
	if ((rc = ctl_connect(c)) != TD_EXIT_OK || (rc = imp_lookup(&im)) != TD_EXIT_OK)
		goto out;
	if (im.dry_run) {
		imp_dry_lifecycle(&im);
		imp_summary(&im, 0);
		rc = im.count[IMP_REFUSED] ? TD_EXIT_REFUSED : TD_EXIT_OK;
		goto out;
	}
	rc = imp_publish(&im);
	double secs = (double)(now_ms() - im.t0) / 1000.0;
	if (rc == TD_EXIT_OK) {
		/* A release the node refused as already there, or dropped for it, is skipped if it is there. */
		rc = imp_lookup(&im);
	}
	imp_progress(&im, true);
	imp_summary(&im, secs);
	if (rc == TD_EXIT_OK && im.count[IMP_REFUSED])
		rc = TD_EXIT_REFUSED;
out:
	for (size_t i = 0; i < im.n; i++)
		free(im.items[i].reason);
	free(im.items);
	free(im.order);
	free(im.groups);
	free(im.heap);
	free(im.agency);
	free(im.pub_key);
	json_decref(status);
	json_decref(in);
	conn_close(c);
	return rc;
}

static int run(struct conn *c, const struct command *cmd, const struct args *a, bool timeout_set)
{
	const char *name = cmd->name;
	json_t *params = NULL, *v, *result = NULL;
	const char *method = NULL;
	enum output out = OUT_RESULT;
	int rc = TD_EXIT_OK;
	uint64_t num;

	if (strcmp(name, "compile") == 0)
		return compile(a);
	if (strcmp(name, "verify") == 0)
		return verify_cmd(a);
	if (strcmp(name, "import") == 0)
		return import_cmd(c, a, timeout_set);
	if (strcmp(name, "status") == 0) {
		if (a->npos != 0)
			return usage("status takes no arguments");
		method = "status";
		params = json_object();
	} else if (strcmp(name, "publish") == 0) {
		if (a->npos != 2 || (strcmp(a->pos[0], "tender") != 0 && strcmp(a->pos[0], "award") != 0))
			return usage("usage: publish tender|award FILE|- [--wait]");
		json_t *rel = load_file(a->pos[1]);
		if (!rel)
			return TD_EXIT_REFUSED;
		method = "tender.publish";
		params = publish_params(a->pos[0], NULL, rel, a->set[O_WAIT]);
	} else if (strcmp(name, "amend") == 0) {
		if (a->npos != 2 || !a->pos[0][0])
			return usage("usage: amend OCID FILE|- [--wait]");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		json_t *rel = load_file(a->pos[1]);
		if (!rel)
			return TD_EXIT_REFUSED;
		method = "tender.publish";
		params = publish_params("tenderAmendment", a->pos[0], rel, a->set[O_WAIT]);
	} else if (strcmp(name, "cancel") == 0) {
		const char *reason = a->val[O_REASON];
		if (a->npos != 1 || !a->pos[0][0] || !reason || !reason[0])
			return usage("usage: cancel OCID --reason TEXT [--wait]");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		json_t *why = arg_string("--reason", reason, &rc);
		if (!why)
			return rc;
		json_t *tender = json_object();
		json_object_set_new(tender, "status", json_string("cancelled"));
		json_object_set_new(tender, "statusDetails", why);
		json_t *rel = json_object();
		json_object_set_new(rel, "tender", tender);
		method = "tender.publish";
		params = publish_params("tenderCancellation", a->pos[0], rel, a->set[O_WAIT]);
	} else if (strcmp(name, "get") == 0) {
		if (a->npos != 1 || !a->pos[0][0])
			return usage("usage: get OCID");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		method = "tender.get";
		params = json_object();
		json_object_set_new(params, "ocid", v);
	} else if (strcmp(name, "list") == 0) {
		if (a->npos != 0)
			return usage("list takes no arguments, only options (tenderctl list --help)");
		out = OUT_LIST;
		if (a->set[O_FORMAT]) {
			if (strcmp(a->val[O_FORMAT], "table") == 0)
				out = OUT_TABLE;
			else if (strcmp(a->val[O_FORMAT], "json") != 0)
				return usage("list: --format is json or table, not '%s'", a->val[O_FORMAT]);
		}
		if (a->set[O_WITH_CURSOR] && out == OUT_LIST)
			out = OUT_RESULT;
		params = json_object();
		if (a->set[O_LIMIT]) {
			if (!parse_u64(a->val[O_LIMIT], &num)) {
				json_decref(params);
				return usage("list: --limit must be a decimal integer, not '%s'", a->val[O_LIMIT]);
			}
			json_object_set_new(params, "limit", td_json_uint(num));
		}
		if (!set_string_opt(params, "cursor", a, O_CURSOR, &rc) ||
		    !set_string_opt(params, "agency", a, O_AGENCY, &rc) ||
		    !set_string_opt(params, "status", a, O_STATUS, &rc) ||
		    !set_string_opt(params, "category", a, O_CATEGORY, &rc) ||
		    !set_string_opt(params, "method", a, O_METHOD, &rc) ||
		    !set_string_opt(params, "since", a, O_SINCE, &rc) ||
		    !set_string_opt(params, "until", a, O_UNTIL, &rc)) {
			json_decref(params);
			return rc;
		}
		method = "tender.list";
	} else if (strcmp(name, "watch") == 0) {
		if (a->npos != 0)
			return usage("usage: watch [--from HEIGHT]");
		params = json_object();
		if (!set_height_opt(params, "from_height", a, O_FROM, &rc)) {
			json_decref(params);
			return rc;
		}
		if (!timeout_set)
			c->timeout_s = CTL_TIMEOUT_DEFAULT; /* for connecting and sending only */
		return watch(c, params);
	} else if (strcmp(name, "export") == 0) {
		if (a->npos != 0)
			return usage("usage: export [--from H] [--to H] [--records] [--out FILE] [--proofs DIR]");
		if (a->set[O_OUT] && !a->val[O_OUT][0])
			return usage("export: --out needs a file name");
		if (a->set[O_FORMAT] && strcmp(a->val[O_FORMAT], "csv") == 0) {
			if (a->set[O_FROM] || a->set[O_TO] || a->set[O_RECORDS] || a->set[O_PROOFS])
				return usage(
					"export --format csv lists every tender: it takes no --from, --to, --records "
					"or --proofs");
			if (!timeout_set)
				c->timeout_s = CTL_TIMEOUT_DEFAULT;
			return export_csv(c, a->val[O_OUT]);
		}
		if (a->set[O_FORMAT] && strcmp(a->val[O_FORMAT], "json") != 0)
			return usage("export: --format is json or csv, not '%s'", a->val[O_FORMAT]);
		if (a->set[O_PROOFS] && !a->val[O_PROOFS][0])
			return usage("export: --proofs needs a directory");
		params = json_object();
		if (!set_height_opt(params, "from", a, O_FROM, &rc) || !set_height_opt(params, "to", a, O_TO, &rc)) {
			json_decref(params);
			return rc;
		}
		if (a->set[O_RECORDS])
			json_object_set_new(params, "records", json_true());
		method = "ledger.export";
	} else if (strcmp(name, "block") == 0) {
		if (a->npos != 1)
			return usage("usage: block HEIGHT");
		if (!parse_u64(a->pos[0], &num))
			return usage("block: HEIGHT must be a decimal integer, not '%s'", a->pos[0]);
		method = "block.get";
		params = json_object();
		json_object_set_new(params, "height", td_json_uint(num));
	} else if (strcmp(name, "record") == 0) {
		uint8_t id[TD_HASH_LEN];
		if (a->npos != 1)
			return usage("usage: record ID");
		if (!td_unhex(id, TD_HASH_LEN, a->pos[0], strlen(a->pos[0])))
			return usage("record: ID must be a record id, %d hex digits, not '%s'", 2 * TD_HASH_LEN,
				     a->pos[0]);
		method = "record.status";
		params = json_object();
		json_object_set_new(params, "id", json_string(a->pos[0]));
	} else if (strcmp(name, "proof") == 0) {
		if (a->npos != 1)
			return usage("usage: proof OCID [--out FILE]");
		if (a->set[O_OUT] && !*a->val[O_OUT])
			return usage("proof: --out needs a file name");
		method = "proof.get";
		params = json_pack("{s:s}", "ocid", a->pos[0]);
	} else if (strcmp(name, "validators") == 0) {
		if (a->npos != 0)
			return usage("usage: validators [--at HEIGHT]");
		method = "chain.validators";
		params = json_object();
		if (!set_height_opt(params, "height", a, O_AT, &rc)) {
			json_decref(params);
			return rc;
		}
	} else if (strcmp(name, "proposals") == 0) {
		if (a->npos != 0)
			return usage("usage: proposals");
		method = "gov.proposals";
		params = json_object();
	} else if (strcmp(name, "approve") == 0) {
		uint8_t id[TD_HASH_LEN];
		if (a->npos != 1 || !td_unhex(id, TD_HASH_LEN, a->pos[0], strlen(a->pos[0])))
			return usage("usage: approve PROPOSAL_ID (the proposal's record id, %d hex digits)",
				     2 * TD_HASH_LEN);
		method = "gov.approve";
		params = json_pack("{s:s}", "proposal", a->pos[0]);
		if (a->set[O_WAIT])
			json_object_set_new(params, "wait", json_true());
	} else if (strcmp(name, "propose") == 0) {
		if ((rc = propose_params(a, &params)) != TD_EXIT_OK)
			return rc;
		method = "gov.propose";
	} else if (strcmp(name, "members") == 0) {
		if (a->npos != 0)
			return usage("usage: members");
		method = "chain.members";
		params = json_object();
	} else if (strcmp(name, "evidence") == 0) {
		if (a->npos != 0)
			return usage("usage: evidence");
		method = "evidence.list";
		params = json_object();
	} else if (strcmp(name, "call") == 0) {
		char err[TD_ERRMSG_MAX];
		if (a->npos < 1 || a->npos > 2 || !a->pos[0][0])
			return usage("usage: call METHOD [PARAMS_JSON], or call BATCH_JSON");
		if (a->npos == 1 && a->pos[0][strspn(a->pos[0], " \t\r\n")] == '[') {
			json_t *batch = td_json_load(a->pos[0], strlen(a->pos[0]), err, sizeof(err));
			if (!batch)
				return usage("call: BATCH_JSON is not valid JSON: %s", err);
			if (!json_is_array(batch)) {
				json_decref(batch);
				return usage("call: BATCH_JSON must be a JSON array");
			}
			/* Like publish --wait: no default deadline when an entry waits for its commit. */
			bool waits = false;
			size_t k;
			json_array_foreach(batch, k, v)
				waits = waits || json_is_true(json_object_get(json_object_get(v, "params"), "wait"));
			if (!timeout_set)
				c->timeout_s = waits ? 0 : CTL_TIMEOUT_DEFAULT;
			return batch_call(c, batch);
		}
		if (!(v = arg_string("METHOD", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		if (a->npos == 2) {
			params = td_json_load(a->pos[1], strlen(a->pos[1]), err, sizeof(err));
			if (!params)
				return usage("call: PARAMS_JSON is not valid JSON: %s", err);
			if (!json_is_object(params) && !json_is_array(params)) {
				json_decref(params);
				return usage("call: PARAMS_JSON must be an object or an array");
			}
		} else {
			params = json_object();
		}
		method = a->pos[0];
	} else {
		return usage("unknown command '%s'", name); /* not reached: main checked the name */
	}
	/* A --wait request returns when its record is committed: no default deadline. */
	if (!timeout_set)
		c->timeout_s = a->set[O_WAIT] ? 0 : CTL_TIMEOUT_DEFAULT;
	rc = request(c, method, params, &result);
	if (rc != TD_EXIT_OK)
		return rc;
	if (strcmp(method, "tender.list") == 0 && json_is_object(result))
		rc = print_list(result, out);
	else if (strcmp(name, "export") == 0 || strcmp(name, "proof") == 0)
		rc = write_json(a->val[O_OUT], result);
	else
		rc = print_json(stdout, result);
	if (rc == TD_EXIT_OK && strcmp(name, "export") == 0 && a->set[O_PROOFS])
		rc = export_proofs(c, result, a->val[O_PROOFS]);
	json_decref(result);
	return rc;
}

static int set_socket(struct conn *c, const char *val)
{
	if (!*val)
		return usage("--socket needs a path");
	c->path = val;
	return TD_EXIT_OK;
}

static int set_timeout(struct conn *c, const char *val, bool *timeout_set)
{
	uint64_t num;
	if (!parse_u64(val, &num) || num > 86400 * 365)
		return usage("--timeout must be a decimal number of seconds, not '%s'", val);
	c->timeout_s = (unsigned)num;
	*timeout_set = true;
	return TD_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	bool timeout_set = false;
	const char *env = getenv("TENDERD_SOCKET");
	int i;

	c.path = env && *env ? env : CTL_DEFAULT_SOCKET;
	for (i = 1; i < argc; i++) {
		const char *s = argv[i], *val = NULL;
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			print_help(stdout);
			return TD_EXIT_OK;
		}
		if (strcmp(s, "--socket") == 0 || strcmp(s, "--timeout") == 0) {
			if (i + 1 >= argc)
				return usage("%s needs a value", s);
			val = argv[++i];
		} else if (strncmp(s, "--socket=", 9) == 0 || strncmp(s, "--timeout=", 10) == 0) {
			val = strchr(s, '=') + 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			return usage("unknown option %s", s);
		} else {
			break;
		}
		int rc = strncmp(s, "--socket", 8) == 0 ? set_socket(&c, val) : set_timeout(&c, val, &timeout_set);
		if (rc != TD_EXIT_OK)
			return rc;
	}
	if (i >= argc)
		return usage("no command given");
	if (strcmp(argv[i], "help") == 0) {
		const struct command *hc = NULL;
		for (size_t k = 0; i + 1 < argc && k < command_count(); k++)
			if (strcmp(argv[i + 1], commands[k].name) == 0)
				hc = &commands[k];
		if (hc)
			print_command_help(stdout, hc);
		else
			print_help(stdout);
		return TD_EXIT_OK;
	}
	const struct command *cmd = NULL;
	for (size_t k = 0; k < command_count(); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return usage("unknown command '%s'", argv[i]);
	struct args a;
	int rc = parse_args(argc - i - 1, argv + i + 1, cmd, &a);
	if (rc != TD_EXIT_OK)
		return rc;
	if (a.help) {
		print_command_help(stdout, cmd);
		return TD_EXIT_OK;
	}
	if (a.socket && (rc = set_socket(&c, a.socket)) != TD_EXIT_OK)
		return rc;
	if (a.timeout && (rc = set_timeout(&c, a.timeout, &timeout_set)) != TD_EXIT_OK)
		return rc;
	return run(&c, cmd, &a, timeout_set);
}
