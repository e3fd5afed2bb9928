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

/* The longest line entry_text() writes: two sides, the encoding in hex, names of TD_NAME_MAX. */
#define ENTRY_TEXT_MAX 4096

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

/* A line being written into a fixed buffer; the first overflow poisons it. */
struct text {
	char *p;
	size_t n, cap;
	bool ok;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->ok && t->cap - t->n > n) {
		memcpy(t->p + t->n, s, n);
		t->n += n;
	} else {
		t->ok = false;
	}
}

static void put_str(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void put_hex(struct text *t, const uint8_t *p, size_t n)
{
	char hex[2 * TD_EVIDENCE_LEN_MAX + 1];
	if (n > TD_EVIDENCE_LEN_MAX) {
		t->ok = false;
		return;
	}
	td_hex(hex, p, n);
	put(t, hex, 2 * n);
}

static void put_uint(struct text *t, uint64_t v)
{
	char d[24];
	int n = snprintf(d, sizeof(d), "%llu", (unsigned long long)v);
	put(t, d, (size_t)n);
}

/* Side s of ev as side_json() and td_json_dump() write it. */
static void put_side(struct text *t, const struct td_evidence *ev, const struct td_evidence_side *s)
{
	if (s->nil) {
		put_str(t, "{\"value\":null");
	} else {
		put_str(t, "{\"value\":\"");
		put_hex(t, s->value, TD_HASH_LEN);
		put_str(t, "\"");
	}
	if (ev->kind == TD_EVIDENCE_PROPOSALS) {
		put_str(t, ",\"valid_round\":");
		if (s->valid_round < 0)
			put_str(t, "null");
		else
			put_uint(t, (uint64_t)s->valid_round);
	}
	put_str(t, ",\"signature\":\"");
	put_hex(t, s->sig, TD_SIG_LEN);
	put_str(t, "\"}");
}

/*
 * The entry's line for ev of chain g (no newline), into out, given its
 * "seen_at" text ts and the hex of ev's encoding: byte for byte what
 * td_json_dump(entry_json(), JSON_COMPACT) writes, without building the
 * tree, when every string in it is plain (JSON writes it as it is). Returns
 * its length, or 0 if a string is not plain (a name with quotes, say) or
 * the line does not fit in cap: then only jansson writes it. What it writes
 * is JSON that td_json_load() takes: quoted plain strings, numbers, nulls,
 * no key twice.
 */
static size_t entry_text(const struct td_genesis *g, const struct td_evidence *ev, const char *ts, size_t ts_len,
			 const char *hex, size_t hex_len, char *out, size_t cap)
{
	int v = td_genesis_find(g, ev->pk);
	const char *name = v >= 0 ? g->v[v].name : "(unknown)";
	struct text t = { out, 0, cap, true };

	if (!plain(g->chain_id, strlen(g->chain_id)) || !plain(name, strlen(name)) || !plain(ts, ts_len) ||
	    !plain(hex, hex_len))
		return 0;
	put_str(&t,
		ev->kind == TD_EVIDENCE_VOTES ? "{\"kind\":\"duplicate-vote\"" : "{\"kind\":\"duplicate-proposal\"");
	put_str(&t, ",\"chain_id\":\"");
	put_str(&t, g->chain_id);
	put_str(&t, "\",\"name\":\"");
	put_str(&t, name);
	put_str(&t, "\",\"pub_key\":\"");
	put_hex(&t, ev->pk, TD_PUBKEY_LEN);
	put_str(&t, "\",\"height\":");
	put_uint(&t, ev->height);
	put_str(&t, ",\"round\":");
	put_uint(&t, ev->round);
	if (v >= 0) {
		put_str(&t, ",\"validator\":");
		put_uint(&t, (uint64_t)v);
	}
	if (ev->kind == TD_EVIDENCE_VOTES) {
		put_str(&t, ",\"type\":\"");
		put_str(&t, type_name(ev->vote_type));
		put_str(&t, "\"");
	}
	put_str(&t, ",\"a\":");
	put_side(&t, ev, &ev->a);
	put_str(&t, ",\"b\":");
	put_side(&t, ev, &ev->b);
	put_str(&t, ",\"seen_at\":\"");
	put(&t, ts, ts_len);
	put_str(&t, "\",\"evidence\":\"");
	put(&t, hex, hex_len);
	put_str(&t, "\"}");
	return t.ok ? t.n : 0;
}

/* entry_text() of ev seen at seen_ms, as evidence_add() writes it. */
static size_t entry_text_at(const struct td_genesis *g, const struct td_evidence *ev, uint64_t seen_ms, char *out,
			    size_t cap)
{
	char ts[32], hex[2 * TD_EVIDENCE_LEN_MAX + 1];
	struct td_buf b;
	size_t n = 0;

	td_time_iso(ts, seen_ms);
	td_buf_init(&b);
	td_evidence_encode(&b, ev);
	if (b.sb.size <= TD_EVIDENCE_LEN_MAX) {
		td_hex(hex, (const uint8_t *)b.sb.data, b.sb.size);
		n = entry_text(g, ev, ts, strlen(ts), hex, 2 * b.sb.size, out, cap);
	}
	td_buf_free(&b);
	return n;
}

/*
 * load_one() for a line as evidence_add() wrote it, without the JSON
 * parser (a node that restarts reads every line again): true if
 * line[0..len), but for its newline, is byte for byte the entry_text() of
 * the evidence its "evidence" member encodes, with its own "seen_at" text
 * and hex. Such a line is JSON that td_json_load() takes, with that same
 * hex as its one "evidence" member, so load_one() would keep the same
 * evidence. False for any other line (edited, torn, of another genesis,
 * written by jansson), which goes through the parser.
 */
static bool load_own(void *ctx, const char *line, size_t len)
{
	static const char tail[] = "\",\"evidence\":\"";
	const size_t ts_len = 24; /* "seen_at": YYYY-MM-DDTHH:MM:SS.mmmZ, as td_time_iso() writes */
	struct evidence *e = ctx;
	struct td_evidence ev;
	uint8_t buf[TD_EVIDENCE_LEN_MAX];
	char text[ENTRY_TEXT_MAX];
	const char *hex, *end;

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
	    td_evidence_decode(&ev, buf, nhex / 2) != 0 ||
	    entry_text(e->g, &ev, hex - (sizeof(tail) - 1) - ts_len, ts_len, hex, nhex, text, sizeof(text)) != len ||
	    memcmp(text, line, len) != 0)
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
	if (e->mem) {
		json_array_append_new(e->mem, entry_json(e->g, ev, seen_ms));
		keep(e, ev);
		return 0;
	}
	/* The line as jansson writes it; only a name it escapes needs jansson. */
	char *text = td_xmalloc(ENTRY_TEXT_MAX);
	size_t len = entry_text_at(e->g, ev, seen_ms, text, ENTRY_TEXT_MAX);
	if (len == 0) {
		json_t *o = entry_json(e->g, ev, seen_ms);
		free(text);
		text = td_json_dump(o, JSON_COMPACT);
		json_decref(o);
		len = strlen(text);
	}
	text[len] = '\n'; /* the NUL (or a free byte) becomes the line's newline */
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
