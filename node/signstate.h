/*
 * The double-sign guard's memory: the consensus sign state, saved to a file
 * (write to a temporary, fsync, rename, fsync the directory) before this
 * validator signs any proposal or vote, and read back at start-up.
 */
#ifndef TENDERD_SIGNSTATE_H
#define TENDERD_SIGNSTATE_H

#include "consensus.h"

#define SIGNSTATE_FILE "sign_state.json"

/* Reads path into ss; a missing file gives an all-zero state. Returns 0 or an error with a message. */
int signstate_load(const char *path, struct cons_sign_state *ss, char *err, size_t errlen);
/* Saves ss durably to path. Returns 0 or TD_EIO with a message. */
int signstate_save(const char *path, const struct cons_sign_state *ss, char *err, size_t errlen);

#endif
