/*
 * Answers of the chain for the HTTP endpoint (http.c), made in chainjson.c
 * beside the other JSON answers (chain.h) so they share its package builder.
 * Errors as the queries of chain.h: TD_ENOTFOUND, TD_EIO, TD_ECORRUPT (the
 * last two logged by the chain).
 */
#ifndef TENDERD_CHAINJSON_H
#define TENDERD_CHAINJSON_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "chain.h"

/*
 * An OCDS 1.1 record package of one tender: {"uri", "version": "1.1",
 * "publishedDate" (the time of the block of its latest release, so the same
 * ledger always gives the same bytes), "publisher": {"name"}, "records":
 * [{"ocid", "releases": [...], "compiledRelease"}]}, releases exported as
 * chain_record_package_json does. 0; TD_ENOTFOUND if no committed tender has
 * this ocid (NULL or longer than TD_OCID_MAX included); TD_EIO, TD_ECORRUPT.
 */
int chain_tender_package_json(const struct chain *c, const char *ocid, const char *publisher, const char *uri,
			      json_t **out);

/* What one committed block is, without its records. */
struct chain_block_info {
	uint64_t height;
	uint8_t hash[TD_HASH_LEN];
	uint64_t time_ms;
	uint32_t n_records;
	uint32_t round;  /* the round its commit was made in (with_commit), else 0 */
	uint32_t n_sigs; /* precommit signatures in its commit (with_commit), else 0 */
};

/*
 * The header of committed block height into *out; with_commit also reads
 * its commit (decoded and checked to be this block's; its signatures are
 * not verified again, as they were when it was committed). 0; TD_ENOTFOUND
 * for 0 or past the tip; TD_EIO, TD_ECORRUPT.
 */
int chain_block_info(const struct chain *c, uint64_t height, bool with_commit, struct chain_block_info *out);

#endif
