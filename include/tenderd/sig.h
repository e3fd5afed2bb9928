/*
 * The signature scheme of records, proposals and votes: Ed25519 through
 * libsodium (proto/sig.c). Every signature the ledger makes or checks goes
 * through these two functions, so the simulator can link a fast,
 * deterministic stand-in in place of proto/sig.c; the daemon never does.
 */
#ifndef TENDERD_SIG_H
#define TENDERD_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenderd/types.h"

/* Signs len bytes of msg with the secret key sk (libsodium layout: seed then public key). */
void td_sig_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len,
		 const uint8_t sk[static TD_SECKEY_LEN]);
/* True if sig is pk's signature of the len bytes of msg. */
bool td_sig_verify(const uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len,
		   const uint8_t pk[static TD_PUBKEY_LEN]) __attribute__((warn_unused_result));

#endif
