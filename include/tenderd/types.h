/*
 * tenderd: sized types, limits and error codes shared by every module.
 *
 * Functions across the project return 0 on success or a negative TD_E* code;
 * td_strerror() names the code. Sizes that come from outside (records, frames,
 * requests) are capped by the TD_*_MAX limits below before anything is allocated.
 */
#ifndef TENDERD_TYPES_H
#define TENDERD_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * The version of the ledger's formats: records, blocks, signatures and the
 * wire. A node refuses data and peers of any other version.
 */
#define TD_FORMAT_VERSION 2

#define TD_HASH_LEN 32   /* BLAKE2b-256 */
#define TD_PUBKEY_LEN 32 /* Ed25519 public key */
#define TD_SECKEY_LEN 64 /* Ed25519 secret key (seed || public key) */
#define TD_SIG_LEN 64    /* Ed25519 signature */

#define TD_RECORD_MAX (64 * 1024)         /* one signed record, encoded */
#define TD_BLOCK_MAX (8 * 1024 * 1024)    /* one block with its records and commit */
#define TD_BLOCK_RECORDS_MAX 4096         /* records in one block */
#define TD_JSON_DEPTH_MAX 16              /* nesting of a release body */
#define TD_OCID_MAX 128                   /* ocid length in bytes */
#define TD_ID_MAX 128                     /* release id length in bytes */
#define TD_CHAIN_ID_MAX 64                /* chain id length in bytes */
#define TD_NAME_MAX 64                    /* agency (validator) name length */
#define TD_VALIDATORS_MAX 128             /* validators in a genesis */
#define TD_PARTIES_MAX 256                /* validators, members and observers in a genesis */
#define TD_ERRMSG_MAX 256                 /* room for a refusal message */

enum td_err {
	TD_OK = 0,
	TD_EINVAL = -1,     /* malformed or refused input */
	TD_ENOMEM = -2,     /* allocation failed */
	TD_EIO = -3,        /* file or store error */
	TD_ESIG = -4,       /* signature does not verify */
	TD_ENOTFOUND = -5,  /* no such item */
	TD_EEXIST = -6,     /* already present (duplicate) */
	TD_EFULL = -7,      /* a bounded queue is full */
	TD_ECORRUPT = -8,   /* stored data fails its checks */
	TD_EPERM = -9,      /* refused by a permission rule */
	TD_ERULE = -10,     /* refused by a ledger rule */
};

/* Returns a static, human-readable name for a TD_E* code. */
const char *td_strerror(int err);

/* tenderctl exit codes. */
#define TD_EXIT_OK 0
#define TD_EXIT_REFUSED 1   /* the node answered with an error */
#define TD_EXIT_UNREACHABLE 2 /* the node cannot be reached */
#define TD_EXIT_USAGE 3     /* bad command line */

/* JSON-RPC error codes: the standard ones and tenderd's own (-32000 and below). */
#define TD_RPC_PARSE_ERROR -32700
#define TD_RPC_INVALID_REQUEST -32600
#define TD_RPC_METHOD_NOT_FOUND -32601
#define TD_RPC_INVALID_PARAMS -32602
#define TD_RPC_INTERNAL -32603
#define TD_RPC_INVALID_RECORD -32001 /* release fails validation */
#define TD_RPC_NOT_FOUND -32002      /* no such tender or block */
#define TD_RPC_DUPLICATE -32003      /* ocid or release already on the ledger */
#define TD_RPC_MEMPOOL_FULL -32004   /* too many pending records */
#define TD_RPC_RULE -32005           /* refused by a lifecycle rule */
#define TD_RPC_SHUTTING_DOWN -32006  /* node is stopping */

/* Lowercase hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void td_hex(char *out, const uint8_t *in, size_t len);
/* Parses exactly 2*len hex digits; returns false on anything else. */
bool td_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen);

/* Aborts the process on allocation failure; never returns NULL. */
void *td_xmalloc(size_t n);
void *td_xcalloc(size_t n, size_t size);
void *td_xrealloc(void *p, size_t n);
char *td_xstrndup(const char *s, size_t n);

#endif
