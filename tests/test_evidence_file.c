/*
 * The evidence file of node/evidence.c: what evidence_add() writes is what
 * jansson writes for its tree (entry_text_at), a restart reads back the same,
 * and a line as it wrote it is read without the JSON parser (load_own) with
 * the parser's answer. Includes the .c file to reach its static functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "../node/evidence.c"

struct fx {
	char dir[64], path[128];
	struct td_genesis g;
};

static int setup(void **state)
{
	struct fx *f = td_xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/td-evfile-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, EVIDENCE_FILE);
	snprintf(f->g.chain_id, sizeof(f->g.chain_id), "evfile-1");
	f->g.n = 3;
	f->g.v = td_xcalloc(f->g.n, sizeof(*f->g.v));
	for (uint32_t i = 0; i < f->g.n; i++)
		randombytes_buf(f->g.v[i].pk, TD_PUBKEY_LEN);
	snprintf(f->g.v[0].name, sizeof(f->g.v[0].name), "Agency 0");
	snprintf(f->g.v[1].name, sizeof(f->g.v[1].name), "Agence \"Nord\""); /* JSON escapes it */
	snprintf(f->g.v[2].name, sizeof(f->g.v[2].name), "Agency 2/b");
	td_genesis_seal(&f->g);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	td_genesis_free(&f->g);
	free(f);
	return 0;
}

/* Evidence by validator v (or an unknown key) at (h, r): votes or proposals, nil sides or not. */
static struct td_evidence make(const struct fx *f, int v, enum td_evidence_kind kind, uint64_t h, uint32_t r,
			       bool a_nil, int32_t vr)
{
	struct td_evidence ev = { .kind = kind, .height = h, .round = r, .vote_type = TD_VOTE_PRECOMMIT };
	if (v >= 0)
		memcpy(ev.pk, f->g.v[v].pk, TD_PUBKEY_LEN);
	else
		randombytes_buf(ev.pk, TD_PUBKEY_LEN);
	ev.a.nil = kind == TD_EVIDENCE_VOTES && a_nil;
	if (!ev.a.nil)
		randombytes_buf(ev.a.value, TD_HASH_LEN);
	randombytes_buf(ev.b.value, TD_HASH_LEN);
	randombytes_buf(ev.a.sig, TD_SIG_LEN);
	randombytes_buf(ev.b.sig, TD_SIG_LEN);
	ev.a.valid_round = kind == TD_EVIDENCE_PROPOSALS ? vr : -1;
	ev.b.valid_round = -1;
	td_evidence_seal(&ev);
	return ev;
}

/* True if a and b encode to the same bytes (and so are the same evidence). */
static bool same(const struct td_evidence *a, const struct td_evidence *b)
{
	struct td_buf x, y;
	bool eq;
	td_buf_init(&x);
	td_buf_init(&y);
	td_evidence_encode(&x, a);
	td_evidence_encode(&y, b);
	eq = x.sb.size == y.sb.size && memcmp(x.sb.data, y.sb.data, x.sb.size) == 0 &&
	     memcmp(a->id, b->id, TD_HASH_LEN) == 0;
	td_buf_free(&x);
	td_buf_free(&y);
	return eq;
}

/* Every line of path, in order, into lines (NUL-terminated, newline kept); returns how many. */
static size_t read_lines(const char *path, char **lines, size_t max)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0, cap = 0;
	char *line = NULL;
	assert_non_null(fp);
	while (n < max && getline(&line, &cap, fp) > 0)
		lines[n++] = td_xstrndup(line, strlen(line));
	free(line);
	fclose(fp);
	return n;
}

static void test_reload_fast_and_parsed(void **state)
{
	struct fx *f = *state;
	struct td_evidence evs[] = {
		make(f, 0, TD_EVIDENCE_VOTES, 5, 0, false, -1),
		make(f, 0, TD_EVIDENCE_VOTES, 5, 1, true, -1),
		make(f, 2, TD_EVIDENCE_VOTES, 18446744073709551615ull, 2147483647u, false, -1),
		make(f, 0, TD_EVIDENCE_PROPOSALS, 7, 2, false, -1),
		make(f, 2, TD_EVIDENCE_PROPOSALS, 7, 3, false, 1),
		make(f, 1, TD_EVIDENCE_VOTES, 9, 0, false, -1),  /* a name JSON escapes: parsed */
		make(f, -1, TD_EVIDENCE_VOTES, 9, 1, false, -1), /* not a validator: "(unknown)", no "validator" */
	};
	const size_t nev = sizeof(evs) / sizeof(evs[0]);
	char err[TD_ERRMSG_MAX], *lines[16];
	struct evidence *e, *fast, *parsed;

	assert_int_equal(evidence_open(&e, f->path, &f->g, err, sizeof(err)), 0);
	for (size_t i = 0; i < nev; i++)
		assert_int_equal(evidence_add(e, &evs[i], 1600000000123ull + i), 0);
	assert_int_equal(evidence_add(e, &evs[0], 1600000009999ull), TD_EEXIST);
	evidence_close(e);

	/* A line the writer made is read without the parser, unless a name needs escapes. */
	assert_int_equal(read_lines(f->path, lines, 16), nev);
	for (size_t i = 0; i < nev; i++) {
		struct evidence *one = td_xcalloc(1, sizeof(*one));
		one->g = &f->g;
		assert_int_equal(load_own(one, lines[i], strlen(lines[i])), i != 5);
		if (i != 5) {
			assert_int_equal(one->n, 1);
			assert_true(same(&one->all[0], &evs[i]));
		}
		evidence_close(one);
	}

	/* Both ways read the same file to the same evidence, in the same order. */
	assert_int_equal(evidence_open(&fast, f->path, &f->g, err, sizeof(err)), 0);
	parsed = td_xcalloc(1, sizeof(*parsed));
	parsed->g = &f->g;
	assert_int_equal(each_line(f->path, NULL, load_one, parsed), 0);
	assert_int_equal(fast->n, nev);
	assert_int_equal(parsed->n, nev);
	for (size_t i = 0; i < nev; i++) {
		assert_true(same(&fast->all[i], &parsed->all[i]));
		assert_true(same(&fast->all[i], &evs[i]));
	}
	evidence_close(fast);
	evidence_close(parsed);
	for (size_t i = 0; i < nev; i++)
		free(lines[i]);
}

/* entry_text() writes what jansson writes for entry_json(), or nothing when a string needs escapes. */
static void test_text_as_jansson(void **state)
{
	struct fx *f = *state;
	char text[ENTRY_TEXT_MAX];

	for (int k = 0; k < 200; k++) {
		int v = (int)randombytes_uniform(4) - 1; /* -1: not a validator */
		bool props = randombytes_uniform(2);
		uint32_t r = randombytes_uniform(k < 100 ? 5 : INT32_MAX) + 1;
		uint64_t h = k == 0 ? UINT64_MAX : (uint64_t)randombytes_random() << randombytes_uniform(33);
		struct td_evidence ev = make(f, v, props ? TD_EVIDENCE_PROPOSALS : TD_EVIDENCE_VOTES, h, r,
					     randombytes_uniform(2), (int32_t)randombytes_uniform(r + 1) - 1);
		uint64_t ms = k == 1 ? 0 : (uint64_t)randombytes_random() * 1000 + randombytes_uniform(1000);
		json_t *o = entry_json(&f->g, &ev, ms);
		char *want = td_json_dump(o, JSON_COMPACT);
		size_t len = entry_text_at(&f->g, &ev, ms, text, sizeof(text));
		if (v == 1) {
			assert_int_equal(len, 0); /* its name has quotes */
		} else {
			assert_int_equal(len, strlen(want));
			assert_memory_equal(text, want, len);
		}
		assert_int_equal(entry_text_at(&f->g, &ev, ms, text, 100), 0); /* does not fit */
		json_decref(o);
		free(want);
	}
}

static void test_other_lines_parsed(void **state)
{
	struct fx *f = *state;
	struct td_evidence ev = make(f, 0, TD_EVIDENCE_VOTES, 3, 0, false, -1);
	char err[TD_ERRMSG_MAX], *lines[2], buf[4096];
	struct evidence *e;
	size_t len;

	assert_int_equal(evidence_open(&e, f->path, &f->g, err, sizeof(err)), 0);
	assert_int_equal(evidence_add(e, &ev, 1600000000000ull), 0);
	evidence_close(e);
	assert_int_equal(read_lines(f->path, lines, 2), 1);
	len = strlen(lines[0]);
	assert_true(len + 2 < sizeof(buf));

	/* The same JSON with a space: not the writer's bytes, so parsed, and the same evidence kept. */
	struct evidence *one = td_xcalloc(1, sizeof(*one));
	one->g = &f->g;
	buf[0] = '{';
	buf[1] = ' ';
	memcpy(buf + 2, lines[0] + 1, len - 1);
	assert_false(load_own(one, buf, len + 1));
	json_t *o = td_json_load(buf, len + 1, err, sizeof(err));
	assert_non_null(o);
	load_one(one, o);
	json_decref(o);
	assert_int_equal(one->n, 1);
	assert_true(same(&one->all[0], &ev));

	/* Torn, or another chain's: not read here; the parser decides. */
	assert_false(load_own(one, lines[0], len - 5));
	memcpy(buf, lines[0], len);
	buf[len] = '\0';
	char *at = strstr(buf, "evfile-1");
	assert_non_null(at);
	at[7] = '2';
	assert_false(load_own(one, buf, len));
	/* A changed evidence byte: its hex no longer matches the other members. */
	memcpy(buf, lines[0], len);
	at = strstr(buf, "\"evidence\":\"");
	assert_non_null(at);
	at = buf + len - 4; /* a hex digit of the last byte */
	*at = *at == '0' ? '1' : '0';
	assert_false(load_own(one, buf, len));
	assert_int_equal(one->n, 1);
	evidence_close(one);
	free(lines[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reload_fast_and_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_as_jansson, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_lines_parsed, setup, teardown),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
