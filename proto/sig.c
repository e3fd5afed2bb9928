/* Ed25519 signatures through libsodium (see tenderd/sig.h). */
#include <sodium.h>

#include "tenderd/sig.h"

void td_sig_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len, const uint8_t sk[static TD_SECKEY_LEN])
{
	crypto_sign_detached(sig, NULL, msg, len, sk);
}

bool td_sig_verify(const uint8_t sig[static TD_SIG_LEN], const uint8_t *msg, size_t len,
		   const uint8_t pk[static TD_PUBKEY_LEN])
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}
