/*
 * Evidence of equivocation (see evidence.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "evidence.h"
#include "log.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"

struct evidence {
	const struct td_genesis *g;
	char path[PATH_MAX];     /* "" when kept in memory only */
	struct td_evidence *all; /* every entry, in file order */
	bool *pending;           /* per entry: not yet known committed or expired */
	json_t *mem;             /* the entries' lines when kept in memory only */
	uint32_t n, npending, cap;
};

static const char *type_name(enum td_vote_type t)
{
	return t == TD_VOTE_PREVOTE ? "prevote" : "precommit";
}

/* Decodes the "evidence" member of an entry; false if absent or malformed. */
static bool entry_evidence(const json_t *o, struct td_evidence *ev)
{
	const json_t *x = json_object_get(o, "evidence");
	uint8_t buf[TD_EVIDENCE_LEN_MAX];
	size_t n;

	if (!td_json_is_string(x) || json_string_length(x) % 2 != 0 || json_string_length(x) / 2 > sizeof(buf))
		return false;
	n = json_string_length(x) / 2;
	return td_unhex(buf, n, json_string_value(x), json_string_length(x)) && td_evidence_decode(ev, buf, n) == 0;
}

static bool known(const struct evidence *e, const struct td_evidence *ev)
{
	uint8_t a[TD_EVIDENCE_KEY_LEN], b[TD_EVIDENCE_KEY_LEN];
	td_evidence_key(a, ev);
	for (uint32_t i = 0; i < e->n; i++) {
		td_evidence_key(b, &e->all[i]);
		if (memcmp(a, b, sizeof(a)) == 0)
			return true;
	}
	return false;
}

static void keep(struct evidence *e, const struct td_evidence *ev)
{
	if (e->n == e->cap) { /* grows as needed: most nodes never see an offence */
		e->cap = e->cap ? 2 * e->cap : 16;
		if (e->cap > EVIDENCE_MAX)
			e->cap = EVIDENCE_MAX;
		e->all = td_xrealloc(e->all, e->cap * sizeof(*e->all));
		e->pending = td_xrealloc(e->pending, e->cap * sizeof(*e->pending));
	}
	e->all[e->n] = *ev;
	e->pending[e->n++] = true;
	e->npending++;
}

/*
 * Calls fn on each line of the file parsed as JSON (the lines that parse);
 * a line that raw (if not NULL) takes, returning true, is not parsed.
 */
static int each_line(const char *path, bool (*raw)(void *ctx, const char *line, size_t len),
		     void (*fn)(void *ctx, json_t *o), void *ctx)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	if (!f)
		return errno == ENOENT ? 0 : TD_EIO;
	while ((len = getline(&line, &cap, f)) > 0) {
		char err[TD_ERRMSG_MAX];
		if (raw && raw(ctx, line, (size_t)len))
			continue;
		json_t *o = td_json_load(line, (size_t)len, err, sizeof(err));
		if (o) {
			fn(ctx, o);
			json_decref(o);
		}
	}
	free(line);
	fclose(f);
	return 0;
}

static void load_one(void *ctx, json_t *o)
{
	struct evidence *e = ctx;
	struct td_evidence ev;
	if (e->n < EVIDENCE_MAX && entry_evidence(o, &ev) && !known(e, &ev))
		keep(e, &ev);
}

/* True if s holds only printable ASCII other than '"' and '\\': JSON writes it as it is, in quotes. */
static bool plain(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* A cursor over a line that must read as expected; the first mismatch poisons it. */
struct expect {
	const char *p, *end;
	bool ok;
};

static void expect(struct expect *x, const char *s, size_t n)
{
	if (x->ok && (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0)
		x->p += n;
	else
		x->ok = false;
}

static void expect_str(struct expect *x, const char *s)
{
	expect(x, s, strlen(s));
}

static void expect_hex(struct expect *x, const uint8_t *p, size_t n)
{
	char hex[2 * TD_SIG_LEN + 1];
	td_hex(hex, p, n);
	expect(x, hex, 2 * n);
}

/* Side x of ev as entry_json() and td_json_dump() write it. */
static void expect_side(struct expect *x, const struct td_evidence *ev, const struct td_evidence_side *s)
{
	char t[48];
	if (s->nil) {
		expect_str(x, "{\"value\":null");
	} else {
		expect_str(x, "{\"value\":\"");
		expect_hex(x, s->value, TD_HASH_LEN);
		expect_str(x, "\"");
	}
	if (ev->kind == TD_EVIDENCE_PROPOSALS) {
		if (s->valid_round < 0)
			snprintf(t, sizeof(t), ",\"valid_round\":null");
		else
			snprintf(t, sizeof(t), ",\"valid_round\":%d", (int)s->valid_round);
		expect_str(x, t);
	}
	expect_str(x, ",\"signature\":\"");
	expect_hex(x, s->sig, TD_SIG_LEN);
	expect_str(x, "\"}");
}

/*
 * load_one() for a line as evidence_add() wrote it, without the JSON
 * parser (a node that restarts reads every line again): true if
 * line[0..len), but for its newline, is byte for byte what entry_json()
 * and td_json_dump() write for the evidence its "evidence" member encodes,
 * matched here piece by piece: quoted printable ASCII, numbers and nulls,
 * no key twice. Such a line is JSON that td_json_load() takes, with that
 * hex as its one "evidence" member, so load_one() would keep the same
 * evidence. False for any other line (edited, torn, of another genesis, a
 * name that JSON escapes), which goes through the parser.
 */
static bool load_own(void *ctx, const char *line, size_t len)
{
	static const char tail[] = "\",\"evidence\":\"";
	const size_t ts_len = 24; /* "seen_at": YYYY-MM-DDTHH:MM:SS.mmmZ, as td_time_iso() writes */
	struct evidence *e = ctx;
	const struct td_genesis *g = e->g;
	struct td_evidence ev;
	uint8_t buf[TD_EVIDENCE_LEN_MAX];
	const char *hex, *end, *ts, *name;
	char t[64];
	int v;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len < 2 || line[len - 1] != '}' || line[len - 2] != '"')
		return false;
	/* From the end: "seen_at":"TS","evidence":"HEX"} */
	end = line + len - 2;
	for (hex = end; hex > line && hex[-1] != '"'; hex--)
		;
	size_t nhex = (size_t)(end - hex);
	if ((size_t)(hex - line) < sizeof(tail) - 1 + ts_len || nhex % 2 != 0 || nhex / 2 > sizeof(buf) ||
	    memcmp(hex - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0 || !td_unhex(buf, nhex / 2, hex, nhex) ||
	    td_evidence_decode(&ev, buf, nhex / 2) != 0)
		return false;
	ts = hex - (sizeof(tail) - 1) - ts_len;
	v = td_genesis_find(g, ev.pk);
	name = v >= 0 ? g->v[v].name : "(unknown)";
	if (!plain(ts, ts_len) || !plain(g->chain_id, strlen(g->chain_id)) || !plain(name, strlen(name)))
		return false;

	/* From the start, what entry_json() puts before "seen_at"'s value. */
	struct expect x = { line, ts, true };
	expect_str(&x,
		   ev.kind == TD_EVIDENCE_VOTES ? "{\"kind\":\"duplicate-vote\"" : "{\"kind\":\"duplicate-proposal\"");
	expect_str(&x, ",\"chain_id\":\"");
	expect_str(&x, g->chain_id);
	expect_str(&x, "\",\"name\":\"");
	expect_str(&x, name);
	expect_str(&x, "\",\"pub_key\":\"");
	expect_hex(&x, ev.pk, TD_PUBKEY_LEN);
	snprintf(t, sizeof(t), "\",\"height\":%llu,\"round\":%llu", (unsigned long long)ev.height,
		 (unsigned long long)ev.round);
	expect_str(&x, t);
	if (v >= 0) {
		snprintf(t, sizeof(t), ",\"validator\":%d", v);
		expect_str(&x, t);
	}
	if (ev.kind == TD_EVIDENCE_VOTES) {
		expect_str(&x, ",\"type\":\"");
		expect_str(&x, type_name(ev.vote_type));
		expect_str(&x, "\"");
	}
	expect_str(&x, ",\"a\":");
	expect_side(&x, &ev, &ev.a);
	expect_str(&x, ",\"b\":");
	expect_side(&x, &ev, &ev.b);
	expect_str(&x, ",\"seen_at\":\"");
	if (!x.ok || x.p != ts)
		return false;
	if (e->n < EVIDENCE_MAX && !known(e, &ev))
		keep(e, &ev);
	return true;
}

int evidence_open(struct evidence **out, const char *path, const struct td_genesis *g, char *err, size_t errlen)
{
	struct evidence *e = td_xcalloc(1, sizeof(*e));
	*out = NULL;
	e->g = g;
	if (!path) {
		e->mem = json_array();
		*out = e;
		return 0;
	}
	snprintf(e->path, sizeof(e->path), "%s", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || each_line(path, load_own, load_one, e) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		evidence_close(e);
		return TD_EIO;
	}
	close(fd);
	*out = e;
	return 0;
}

void evidence_close(struct evidence *e)
{
	if (!e)
		return;
	json_decref(e->mem);
	free(e->all);
	free(e->pending);
	free(e);
}

bool evidence_has(const struct evidence *e, const struct td_evidence *ev)
{
	return known(e, ev);
}

uint32_t evidence_count(const struct evidence *e)
{
	return e->n;
}

uint32_t evidence_pending_count(const struct evidence *e)
{
	return e->npending;
}

static json_t *side_json(const struct td_evidence *ev, const struct td_evidence_side *x)
{
	char val[2 * TD_HASH_LEN + 1], sig[2 * TD_SIG_LEN + 1];
	json_t *o = json_object();
	td_hex(sig, x->sig, TD_SIG_LEN);
	if (x->nil) {
		json_object_set_new(o, "value", json_null());
	} else {
		td_hex(val, x->value, TD_HASH_LEN);
		json_object_set_new(o, "value", json_string(val));
	}
	if (ev->kind == TD_EVIDENCE_PROPOSALS)
		json_object_set_new(o, "valid_round",
				    x->valid_round < 0 ? json_null() : td_json_uint((uint64_t)x->valid_round));
	json_object_set_new(o, "signature", json_string(sig));
	return o;
}

/* The entry's line for ev of chain g. */
static json_t *entry_json(const struct td_genesis *g, const struct td_evidence *ev, uint64_t seen_ms)
{
	char pk[2 * TD_PUBKEY_LEN + 1], ts[32], hex[2 * TD_EVIDENCE_LEN_MAX + 1];
	struct td_buf b;
	int v = td_genesis_find(g, ev->pk);
	json_t *o;

	td_hex(pk, ev->pk, TD_PUBKEY_LEN);
	td_time_iso(ts, seen_ms);
	td_buf_init(&b);
	td_evidence_encode(&b, ev);
	td_hex(hex, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "kind",
		      ev->kind == TD_EVIDENCE_VOTES ? "duplicate-vote" : "duplicate-proposal", "chain_id", g->chain_id,
		      "name", v >= 0 ? g->v[v].name : "(unknown)", "pub_key", pk, "height", td_json_uint(ev->height),
		      "round", td_json_uint(ev->round));
	if (v >= 0)
		json_object_set_new(o, "validator", td_json_uint((uint64_t)v));
	if (ev->kind == TD_EVIDENCE_VOTES)
		json_object_set_new(o, "type", json_string(type_name(ev->vote_type)));
	json_object_set_new(o, "a", side_json(ev, &ev->a));
	json_object_set_new(o, "b", side_json(ev, &ev->b));
	json_object_set_new(o, "seen_at", json_string(ts));
	json_object_set_new(o, "evidence", json_string(hex));
	return o;
}

int evidence_add(struct evidence *e, const struct td_evidence *ev, uint64_t seen_ms)
{
	if (known(e, ev))
		return TD_EEXIST;
	if (e->n == EVIDENCE_MAX) {
		/* Forget what is committed or expired: the chain refuses those offences again on its own. */
		uint32_t k = 0;
		for (uint32_t i = 0; i < e->n; i++) {
			if (e->pending[i]) {
				e->all[k] = e->all[i];
				e->pending[k++] = true;
			}
		}
		e->n = k;
	}
	if (e->n == EVIDENCE_MAX)
		return TD_EFULL;
	json_t *o = entry_json(e->g, ev, seen_ms);
	if (e->mem) {
		json_array_append_new(e->mem, o);
		keep(e, ev);
		return 0;
	}
	char *text = td_json_dump(o, JSON_COMPACT);
	json_decref(o);
	size_t len = strlen(text);
	text[len] = '\n'; /* the NUL becomes the line's newline */
	int rc = TD_EIO, fd = open(e->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0 && write(fd, text, len + 1) == (ssize_t)(len + 1) && fdatasync(fd) == 0)
		rc = 0;
	else
		log_error("%s: cannot record evidence: %s", e->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(text);
	if (rc == 0)
		keep(e, ev);
	return rc;
}

uint32_t evidence_pending(struct evidence *e, uint64_t h, evidence_check_fn check, void *ctx, struct td_evidence *out,
			  uint32_t max)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < e->n && k < max; i++) {
		char err[TD_ERRMSG_MAX];
		if (!e->pending[i])
			continue;
		int rc = check(ctx, &e->all[i], h, err, sizeof(err));
		if (rc == 0) {
			out[k++] = e->all[i];
		} else if (rc == TD_EEXIST || rc == TD_EINVAL || rc == TD_ESIG ||
			   (rc == TD_ERULE && e->all[i].height < h)) {
			e->pending[i] = false; /* committed, expired or never valid here: for good */
			e->npending--;
		}
	}
	return k;
}

struct collect {
	json_t *all;
};

static void collect_one(void *ctx, json_t *o)
{
	struct collect *c = ctx;
	json_array_append(c->all, o);
}

json_t *evidence_list(const struct evidence *e, uint32_t limit)
{
	struct collect c = { json_array() };
	if (e->mem) {
		json_array_extend(c.all, e->mem);
	} else if (each_line(e->path, NULL, collect_one, &c) != 0) {
		json_decref(c.all);
		return NULL;
	}
	while (json_array_size(c.all) > limit)
		json_array_remove(c.all, 0);
	return c.all;
}

int evidence_check(const json_t *entry, const struct td_genesis *g, char *err, size_t errlen)
{
	struct td_evidence ev;
	char e[TD_ERRMSG_MAX];
	const char *cid = json_string_value(json_object_get(entry, "chain_id"));

	if (!entry_evidence(entry, &ev)) {
		snprintf(err, errlen, "malformed evidence entry (no canonical \"evidence\" encoding)");
		return TD_EINVAL;
	}
	if (!cid || strcmp(cid, g->chain_id) != 0 || td_genesis_find(g, ev.pk) < 0) {
		snprintf(err, errlen, "not evidence of chain %s", g->chain_id);
		return TD_EINVAL;
	}
	if (td_evidence_verify(&ev, g->hash, e, sizeof(e)) != 0) {
		snprintf(err, errlen, "%s", e);
		return TD_EINVAL;
	}
	/* What the entry says for people must be what its encoding proves. */
	static const char *const said[] = {
		"kind", "name", "pub_key", "validator", "height", "round", "type", "a", "b"
	};
	json_t *want = entry_json(g, &ev, 0);
	int rc = 0;
	for (size_t i = 0; i < sizeof(said) / sizeof(said[0]) && rc == 0; i++) {
		const json_t *x = json_object_get(entry, said[i]), *y = json_object_get(want, said[i]);
		if ((x || y) && !(x && y && json_equal(x, y))) {
			snprintf(err, errlen, "the entry's \"%s\" differs from what its encoding holds", said[i]);
			rc = TD_EINVAL;
		}
	}
	json_decref(want);
	return rc;
}
