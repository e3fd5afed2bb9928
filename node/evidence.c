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

struct ev_key {
	uint32_t v;
	uint8_t type;
	uint64_t h;
	uint32_t r;
};

struct evidence {
	const struct td_genesis *g;
	char path[PATH_MAX];
	struct ev_key *keys; /* one per entry, in file order */
	uint32_t n;
};

static const char *type_name(enum td_vote_type t)
{
	return t == TD_VOTE_PREVOTE ? "prevote" : "precommit";
}

static bool key_of(const json_t *o, struct ev_key *k)
{
	uint64_t v, h, r;
	const char *t = json_string_value(json_object_get(o, "type"));
	if (!td_json_number_u64(json_object_get(o, "validator"), &v) ||
	    !td_json_number_u64(json_object_get(o, "height"), &h) ||
	    !td_json_number_u64(json_object_get(o, "round"), &r) || !t || v > UINT32_MAX || r > UINT32_MAX)
		return false;
	if (strcmp(t, "prevote") == 0)
		k->type = TD_VOTE_PREVOTE;
	else if (strcmp(t, "precommit") == 0)
		k->type = TD_VOTE_PRECOMMIT;
	else
		return false;
	k->v = (uint32_t)v;
	k->h = h;
	k->r = (uint32_t)r;
	return true;
}

/* Calls fn on each line of the file parsed as JSON (the lines that parse). */
static int each_line(const char *path, void (*fn)(void *ctx, json_t *o), void *ctx)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	if (!f)
		return errno == ENOENT ? 0 : TD_EIO;
	while ((len = getline(&line, &cap, f)) > 0) {
		char err[TD_ERRMSG_MAX];
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

static void load_key(void *ctx, json_t *o)
{
	struct evidence *e = ctx;
	struct ev_key k;
	if (e->n < EVIDENCE_MAX && key_of(o, &k))
		e->keys[e->n++] = k;
}

int evidence_open(struct evidence **out, const char *path, const struct td_genesis *g, char *err, size_t errlen)
{
	struct evidence *e = td_xcalloc(1, sizeof(*e));
	*out = NULL;
	e->g = g;
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->keys = td_xcalloc(EVIDENCE_MAX, sizeof(*e->keys));
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || each_line(path, load_key, e) != 0) {
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
	free(e->keys);
	free(e);
}

uint32_t evidence_count(const struct evidence *e)
{
	return e->n;
}

static json_t *vote_json(const struct evidence_vote *x)
{
	char val[2 * TD_HASH_LEN + 1], sig[2 * TD_SIG_LEN + 1];
	td_hex(sig, x->sig, TD_SIG_LEN);
	if (!x->value)
		return json_pack("{s:n, s:s}", "value", "signature", sig);
	td_hex(val, x->value, TD_HASH_LEN);
	return json_pack("{s:s, s:s}", "value", val, "signature", sig);
}

int evidence_add_votes(struct evidence *e, uint32_t v, enum td_vote_type type, uint64_t h, uint32_t r,
		       const struct evidence_vote *a, const struct evidence_vote *b, uint64_t seen_ms)
{
	char pk[2 * TD_PUBKEY_LEN + 1], ts[32];
	for (uint32_t i = 0; i < e->n; i++)
		if (e->keys[i].v == v && e->keys[i].type == (uint8_t)type && e->keys[i].h == h && e->keys[i].r == r)
			return TD_EEXIST;
	if (e->n == EVIDENCE_MAX)
		return TD_EFULL;
	td_hex(pk, e->g->v[v].pk, TD_PUBKEY_LEN);
	td_time_iso(ts, seen_ms);
	json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:s, s:o, s:o, s:s}", "kind", "duplicate-vote",
			      "chain_id", e->g->chain_id, "validator", td_json_uint(v), "name", e->g->v[v].name,
			      "pub_key", pk, "height", td_json_uint(h), "round", td_json_uint(r), "type",
			      type_name(type), "a", vote_json(a), "b", vote_json(b), "seen_at", ts);
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
		e->keys[e->n++] = (struct ev_key){ v, (uint8_t)type, h, r };
	return rc;
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
	if (each_line(e->path, collect_one, &c) != 0) {
		json_decref(c.all);
		return NULL;
	}
	while (json_array_size(c.all) > limit)
		json_array_remove(c.all, 0);
	return c.all;
}

/* Reads one vote of an entry: value (NULL for nil) and signature. */
static bool vote_of(const json_t *x, uint8_t value[TD_HASH_LEN], bool *nil, uint8_t sig[TD_SIG_LEN])
{
	const json_t *v = json_object_get(x, "value"), *s = json_object_get(x, "signature");
	if (!json_is_string(s) || !td_unhex(sig, TD_SIG_LEN, json_string_value(s), json_string_length(s)))
		return false;
	*nil = json_is_null(v);
	return *nil || (json_is_string(v) && td_unhex(value, TD_HASH_LEN, json_string_value(v), json_string_length(v)));
}

int evidence_check(const json_t *entry, const struct td_genesis *g, char *err, size_t errlen)
{
	struct ev_key k;
	uint8_t va[TD_HASH_LEN], vb[TD_HASH_LEN], sa[TD_SIG_LEN], sb[TD_SIG_LEN];
	bool na, nb;
	const char *cid = json_string_value(json_object_get(entry, "chain_id"));
	if (!key_of(entry, &k) || !cid || !vote_of(json_object_get(entry, "a"), va, &na, sa) ||
	    !vote_of(json_object_get(entry, "b"), vb, &nb, sb)) {
		snprintf(err, errlen, "malformed evidence entry");
		return TD_EINVAL;
	}
	if (strcmp(cid, g->chain_id) != 0 || k.v >= g->n) {
		snprintf(err, errlen, "not evidence of chain %s", g->chain_id);
		return TD_EINVAL;
	}
	if (na == nb && (na || memcmp(va, vb, TD_HASH_LEN) == 0)) {
		snprintf(err, errlen, "the two votes are the same");
		return TD_EINVAL;
	}
	const uint8_t *pk = g->v[k.v].pk;
	if (!td_vote_verify(sa, g->chain_id, (enum td_vote_type)k.type, k.h, k.r, na ? NULL : va, pk) ||
	    !td_vote_verify(sb, g->chain_id, (enum td_vote_type)k.type, k.h, k.r, nb ? NULL : vb, pk)) {
		snprintf(err, errlen, "a signature does not verify against %s's key", g->v[k.v].name);
		return TD_EINVAL;
	}
	return 0;
}
