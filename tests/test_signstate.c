/*
 * The sign state file (node/signstate.c): the text signstate_save() writes
 * is byte for byte the compact JSON of the tree json_pack() builds for it
 * (what it wrote before it formatted the text itself), and it loads back to
 * the same state. Includes the .c file to reach sign_state_text().
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

#include "../node/signstate.c"

static json_t *ref_signed(const struct cons_signed *s)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, s->value, TD_HASH_LEN);
	return json_pack("{s:b, s:o, s:b, s:s, s:o}", "set", s->set, "round", td_json_uint(s->round), "nil", s->nil,
			 "value", hex, "valid_round", td_json_uint((uint64_t)((int64_t)s->valid_round + 1)));
}

/* The document as json_pack() and td_json_dump() write it; the caller frees it. */
static char *ref_text(const struct cons_sign_state *ss)
{
	json_t *doc = json_pack("{s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "any", ss->any, "height",
				td_json_uint(ss->height), "round", td_json_uint(ss->round), "step",
				td_json_uint((uint64_t)ss->step), "proposal", ref_signed(&ss->proposal), "prevote",
				ref_signed(&ss->prevote), "precommit", ref_signed(&ss->precommit), "locked",
				ref_signed(&ss->locked));
	char *text = td_json_dump(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

static void random_signed(struct cons_signed *s, int k)
{
	s->set = randombytes_uniform(2);
	s->nil = randombytes_uniform(2);
	s->round = k == 0 ? 0 : k == 1 ? UINT32_MAX : randombytes_random();
	s->valid_round = k == 0 ? -1 : k == 1 ? INT32_MAX : (int32_t)randombytes_uniform(1000) - 1;
	randombytes_buf(s->value, TD_HASH_LEN);
}

static void test_text_as_jansson(void **state)
{
	(void)state;
	for (int k = 0; k < 200; k++) {
		struct cons_sign_state ss = { 0 };
		char text[SIGN_STATE_TEXT_MAX];
		if (k > 0) {
			ss.any = true;
			ss.height = k == 1 ? UINT64_MAX : ((uint64_t)randombytes_random() << 32 | randombytes_random());
			ss.round = k == 1 ? UINT32_MAX : randombytes_uniform(100);
			ss.step = (enum cons_step)randombytes_uniform(3);
			random_signed(&ss.proposal, k);
			random_signed(&ss.prevote, k);
			random_signed(&ss.precommit, k);
			random_signed(&ss.locked, k);
		}
		char *want = ref_text(&ss);
		size_t len = sign_state_text(text, sizeof(text), &ss);
		assert_int_equal(len, strlen(want));
		assert_string_equal(text, want);
		free(want);
	}
}

static void test_save_load(void **state)
{
	char dir[] = "/tmp/td-signstate-XXXXXX", path[64], err[TD_ERRMSG_MAX];
	struct cons_sign_state ss = { .any = true, .height = 42, .round = 3, .step = CONS_STEP_PRECOMMIT }, back;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SIGNSTATE_FILE);
	random_signed(&ss.proposal, 2);
	random_signed(&ss.prevote, 2);
	random_signed(&ss.precommit, 2);
	random_signed(&ss.locked, 2);
	assert_int_equal(signstate_save(path, &ss, err, sizeof(err)), 0);
	assert_int_equal(signstate_load(path, &back, err, sizeof(err)), 0);
	assert_true(back.any);
	assert_int_equal(back.height, 42);
	assert_int_equal(back.round, 3);
	assert_int_equal(back.step, CONS_STEP_PRECOMMIT);
	const struct cons_signed *a[] = { &ss.proposal, &ss.prevote, &ss.precommit, &ss.locked },
				 *b[] = { &back.proposal, &back.prevote, &back.precommit, &back.locked };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(a[i]->set, b[i]->set);
		assert_int_equal(a[i]->nil, b[i]->nil);
		assert_int_equal(a[i]->round, b[i]->round);
		assert_int_equal(a[i]->valid_round, b[i]->valid_round);
		assert_memory_equal(a[i]->value, b[i]->value, TD_HASH_LEN);
	}
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_as_jansson),
		cmocka_unit_test(test_save_load),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
