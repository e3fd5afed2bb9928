/*
 * libFuzzer target for sign_state.json (node/signstate.c: signstate_load), the double-sign
 * guard's memory that a validator reads back at start-up.
 *
 * Each input is written to a temporary file and loaded. Checks: a state that loads, saved
 * with signstate_save and loaded again, is the same state.
 *
 * Seeds: tests/fuzz/corpus/fuzz_signstate (fuzz-corpus-gen: states written by signstate_save).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenderd/types.h"
#include "signstate.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_signed(const struct cons_signed *a, const struct cons_signed *b)
{
	fz_check(a->set == b->set && a->round == b->round && a->nil == b->nil && a->valid_round == b->valid_round &&
			 memcmp(a->value, b->value, TD_HASH_LEN) == 0,
		 "a signed message differs after a round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[PATH_MAX], path2[PATH_MAX];
	struct cons_sign_state ss, again;
	char err[TD_ERRMSG_MAX];

	if (!path[0]) {
		snprintf(path, sizeof(path), "%s/sign_state.json", fz_tmpdir());
		snprintf(path2, sizeof(path2), "%s/sign_state2.json", fz_tmpdir());
	}
	fz_write_file(path, data, size);
	memset(&ss, 0, sizeof(ss));
	if (signstate_load(path, &ss, err, sizeof(err)) != 0)
		return 0;
	fz_check(signstate_save(path2, &ss, err, sizeof(err)) == 0, "a loaded state does not save");
	memset(&again, 0, sizeof(again));
	fz_check(signstate_load(path2, &again, err, sizeof(err)) == 0, "a saved state does not load");
	fz_check(ss.any == again.any && ss.height == again.height && ss.round == again.round && ss.step == again.step,
		 "the state differs after a round trip");
	same_signed(&ss.proposal, &again.proposal);
	same_signed(&ss.prevote, &again.prevote);
	same_signed(&ss.precommit, &again.precommit);
	same_signed(&ss.locked, &again.locked);
	return 0;
}
