/*
 * libFuzzer target for tender.list (chain_list_json): filters, since/until dates and cursors
 * from a client, over the fuzz world's ledger (five tenders, one amended and awarded, in an
 * in-memory store).
 *
 * Input: byte 0 chooses the limit (0..1001, mostly 1..4), byte 1 which filter members are
 * set (bit 0 status, 1 category, 2 method, 3 since, 4 until, 5 cursor, 6 agency: the
 * validator, 7 agency: an unknown key); the rest is newline-separated text for status,
 * category, method, since, until and cursor in that order.
 *
 * Checks: the answer is 0 or TD_EINVAL (never a store error on a sound store); an answer is
 * {"tenders": [...at most limit], "next_cursor": string or null}; following next_cursor (up
 * to 8 pages) never repeats a tender and never fails.
 *
 * Seeds: tests/fuzz/corpus/fuzz_list (fuzz-corpus-gen).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/types.h"
#include "chain.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 6
#define PAGES_MAX 8

static uint32_t limit_of(uint8_t b)
{
	switch (b % 16) {
	case 0: return 0;
	case 1: return 1001;
	case 2: return 1000;
	default: return 1 + b % 4;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_world *w = fz_world();
	static const uint8_t stranger[TD_PUBKEY_LEN] = { 1 };
	char *field[FIELDS] = { 0 };

	if (size < 2)
		return 0;
	uint32_t limit = limit_of(data[0]);
	uint8_t mask = data[1];
	const char *p = (const char *)data + 2, *end = (const char *)data + size;
	for (int i = 0; i < FIELDS; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		field[i] = strndup(p, (size_t)(e - p));
		p = nl ? nl + 1 : end;
	}
	struct chain_filter f = { 0 };
	if (mask & 1)
		f.status = field[0];
	if (mask & 2)
		f.category = field[1];
	if (mask & 4)
		f.method = field[2];
	if (mask & 8)
		f.since = field[3];
	if (mask & 16)
		f.until = field[4];
	if (mask & 64)
		f.agency = w->g.v[0].pk;
	else if (mask & 128)
		f.agency = stranger;
	const char *cursor = (mask & 32) ? field[5] : NULL;

	json_t *seen = json_object();
	char *next = NULL;
	for (int page = 0; page < PAGES_MAX; page++) {
		json_t *res = NULL;
		int rc = chain_list_json(w->c, &f, limit, page ? next : cursor, &res);
		fz_check(rc == 0 || rc == TD_EINVAL, "tender.list failed other than TD_EINVAL");
		fz_check((rc == 0) == (res != NULL), "tender.list answer and code disagree");
		if (rc != 0) {
			fz_check(page == 0, "a next_cursor from tender.list is refused");
			break;
		}
		const json_t *tenders = json_object_get(res, "tenders"), *nc = json_object_get(res, "next_cursor");
		fz_check(json_is_array(tenders) && json_array_size(tenders) <= limit, "tenders not an array within limit");
		fz_check(nc && (json_is_null(nc) || td_json_is_string(nc)), "next_cursor neither string nor null");
		size_t i;
		json_t *t;
		json_array_foreach(tenders, i, t) {
			const json_t *ocid = json_object_get(t, "ocid");
			fz_check(td_json_is_string(ocid), "a listed tender has no ocid");
			fz_check(!json_object_get(seen, json_string_value(ocid)), "a tender listed twice across pages");
			json_object_set_new(seen, json_string_value(ocid), json_true());
		}
		free(next);
		next = td_json_is_string(nc) ? strdup(json_string_value(nc)) : NULL;
		json_decref(res);
		if (!next)
			break;
	}
	free(next);
	json_decref(seen);
	for (int i = 0; i < FIELDS; i++)
		free(field[i]);
	return 0;
}
