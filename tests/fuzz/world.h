/*
 * Shared fixtures of the fuzz targets: a one-validator chain "tenderd-test" whose key comes
 * from a fixed seed, held in an in-memory store, with the sample tenders of tests/data
 * committed (one block per sample, then an amendment and an award of the Jeju tender), and
 * small helpers. Nothing here is fuzzed; the targets use it as the ledger they query.
 */
#ifndef TD_FUZZ_WORLD_H
#define TD_FUZZ_WORLD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tenderd/block.h"
#include "tenderd/release.h"

#define FZ_CHAIN_ID "tenderd-test"
/* The world's genesis hash: what every signature of its chain binds. */
#define FZ_CHAIN (fz_world()->g.hash)
#define FZ_PREFIX "ocds-kr2020"
#define FZ_GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */

struct chain;
struct store_mem_world;

struct fz_world {
	struct td_genesis g;
	uint8_t sk[TD_SECKEY_LEN];
	struct store_mem_world *mw; /* holds the chain's in-memory store */
	struct chain *c;
	uint64_t clock_ms;
	char jeju_tender_id[TD_ID_MAX + 1]; /* the release id of the committed Jeju tender */
};

/* The world, built at the first call and kept for the process. Aborts if it cannot be built. */
struct fz_world *fz_world(void);
/* Aborts with what if ok is false: an invariant of a target broke. */
void fz_check(bool ok, const char *what);
/* A sample of tests/data/samples by file name (new reference); aborts if missing. */
json_t *fz_sample(const char *name);
/* Signs release as kind by the world's validator at time_ms; NULL if refused. */
struct td_record *fz_sign(const json_t *release, enum td_kind kind, uint64_t time_ms);
/* Applies a block of n records (stolen) with a full commit; returns chain_apply's code. */
int fz_apply(struct fz_world *w, struct td_record **recs, uint32_t n);
/* A private temporary directory for the process (created once, removed at exit). */
const char *fz_tmpdir(void);
/* Writes len bytes to path (truncating); aborts on failure. */
void fz_write_file(const char *path, const void *data, size_t len);

#endif
