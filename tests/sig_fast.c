/*
 * A fast, deterministic stand-in for Ed25519 (see tenderd/sig.h), linked only
 * into the simulator: a signature is BLAKE2b-512 of the message keyed with
 * the signer's public key. It binds the same bytes to the same key as the
 * real scheme, so a changed message or a wrong key still fails to verify,
 * but anyone who knows the public key can make one: it proves nothing
 * outside a simulation.
 */
#include <string.h>

#include <sodium.h>

#include "tenderd/sig.h"

void td_sig_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len, const uint8_t sk[static TD_SECKEY_LEN])
{
	crypto_generichash(sig, TD_SIG_LEN, msg, len, sk + crypto_sign_SEEDBYTES, TD_PUBKEY_LEN);
}

bool td_sig_verify(const uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len,
		   const uint8_t pk[static TD_PUBKEY_LEN])
{
	uint8_t want[TD_SIG_LEN];
	crypto_generichash(want, TD_SIG_LEN, msg, len, pk, TD_PUBKEY_LEN);
	return sodium_memcmp(want, sig, TD_SIG_LEN) == 0;
}
