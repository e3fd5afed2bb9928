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

/*
 * The input of fuzz_p2p, shared with corpus_gen.c (details in fuzz_p2p.c): one byte of
 * FZ_P2P_CFG_* flags, then operations, each an opcode byte (taken modulo FZ_P2P_OPS) and its
 * arguments:
 *   OPEN  a             slot a&3 gets a new connection; a&4: the node dials (else it listens)
 *   HS    a             slot a&3: the harness's next handshake message, as validator 1+((a>>2)&1),
 *                       with the corruption (a>>3) (0: none; see fuzz_p2p.c)
 *   FRAME a f hi lo ... slot a&3: a frame of type a>>2 sealed with the session's stream, flags f
 *                       (FZ_P2P_F_*), then hi<<8|lo payload bytes (fewer if the input ends)
 *   RAW   a n ...       slot a&3: n bytes as they are
 *   CHUNK n             later writes go in pieces of n bytes (0: whole), the loop run between
 *   SEND  a hi lo ...   the node sends the payload to the peer of slot a&3 (p2p_send), 1+((a>>3)&7) times
 *   BCAST a hi lo ...   the node broadcasts the payload, except to slot a&3 if a&4, 1+((a>>3)&7) times
 *   DISC  a             the node drops the peer of slot a&3 (p2p_disconnect)
 *   CLOSE a             the harness closes slot a&3
 */
enum fz_p2p_op {
	FZ_P2P_OPEN,
	FZ_P2P_HS,
	FZ_P2P_FRAME,
	FZ_P2P_RAW,
	FZ_P2P_CHUNK,
	FZ_P2P_SEND,
	FZ_P2P_BCAST,
	FZ_P2P_DISC,
	FZ_P2P_CLOSE,
	FZ_P2P_OPS
};
#define FZ_P2P_CFG_FRAME_MAX 3 /* frame_max: 0 the default, 1: 64, 2: 1024, 3: 70000 (over the 64 KiB buffer kept) */
#define FZ_P2P_CFG_REFUSE_2 4  /* key_lookup refuses validator 2 */
#define FZ_P2P_CFG_STRICT 8    /* a message td_msg_decode refuses gets its peer disconnected */
#define FZ_P2P_CFG_ECHO 16     /* a message that decodes is sent back to its peer */
#define FZ_P2P_CFG_GREET 32    /* the node sends a STATUS to each peer from on_connect */
#define FZ_P2P_CFG_SMALL 64    /* socket buffers of 4 KiB and a send queue of 8 KiB: slow peers are dropped */
#define FZ_P2P_CFG_REENTER 128 /* on_disconnect broadcasts a STATUS; a message starting 0xc1 makes on_message p2p_stop */
#define FZ_P2P_F_TAG 3         /* stream tag: 0 MESSAGE, 1 PUSH, 2 REKEY, 3 FINAL */
#define FZ_P2P_F_FLIP 4        /* one ciphertext bit flipped */
#define FZ_P2P_F_WITHHOLD 8    /* sealed but not sent: the stream moves on without the node */
#define FZ_P2P_F_REPLAY 16     /* the previous frame's bytes again instead */
#define FZ_P2P_F_LIE 32        /* the length prefix is one more (FZ_P2P_F_MORE) or one less than the truth */
#define FZ_P2P_F_MORE 64
#define FZ_P2P_F_FILL 128      /* the payload repeated to 16 times the length */
#define FZ_P2P_TYPE_NONE 63    /* a frame type of 63: an empty plaintext (no type byte) */

#endif
