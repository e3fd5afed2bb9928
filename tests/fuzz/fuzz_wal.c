/*
 * libFuzzer target for the consensus log's reader (node/wal.c): the input is a whole
 * consensus.wal file as a crash, a full disk or a damaged disk may leave it.
 *
 * Invariants checked besides "no crash, no leak":
 * - wal_open refuses only a file whose first 8 bytes are not the header;
 * - replay hands out entries that lie inside the file and cuts the file to the intact
 *   prefix, never growing it;
 * - an entry appended after the replay comes back, after every intact entry before it,
 *   when the file is opened and replayed again (a torn tail never hides later entries).
 * Each entry's payload then goes through the decoders the driver uses on it: msgpack,
 * and a VOTE's wire message.
 *
 * Seeds: tests/fuzz/corpus/fuzz_wal (logs with proposal, vote and timeout entries, a torn
 * tail, a flipped byte).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tenderd/codec.h"
#include "tenderd/msg.h"
#include "tenderd/types.h"
#include "wal.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk {
	uint32_t n;
	size_t bytes;
	uint8_t last[8];
	size_t last_len;
};

static int on_entry(void *ctx, const uint8_t *p, size_t len)
{
	struct walk *w = ctx;
	msgpack_unpacked u;
	w->n++;
	w->bytes += len;
	w->last_len = len < sizeof(w->last) ? len : sizeof(w->last);
	memcpy(w->last, p, w->last_len);
	msgpack_unpacked_init(&u);
	if (td_unpack(&u, p, len) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2 &&
	    u.data.via.array.ptr[1].type == MSGPACK_OBJECT_BIN) {
		struct td_msg m;
		const msgpack_object *bin = &u.data.via.array.ptr[1];
		if (td_msg_decode(&m, (const uint8_t *)bin->via.bin.ptr, bin->via.bin.size) == 0)
			td_msg_free(&m);
	}
	msgpack_unpacked_destroy(&u);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	static const uint8_t mark[5] = { 0x93, 0x03, 0x01, 0x02, 0x03 };
	char err[TD_ERRMSG_MAX];
	struct wal *w;
	struct walk a = { 0 }, b = { 0 };

	if (size > (1u << 20))
		return 0;
	if (!path[0]) {
		log_set_level(LOG_ERROR);
		snprintf(path, sizeof(path), "/tmp/fuzz_wal.%d", (int)getpid());
	}
	FILE *f = fopen(path, "wb");
	fz_check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "write the input file");
	int rc = wal_open(&w, path, err, sizeof(err));
	bool header = size >= 8 && memcmp(data, WAL_MAGIC, 8) == 0;
	fz_check(rc == 0 || (size >= 8 && !header), "wal_open refuses only a foreign header");
	if (rc != 0)
		goto out;
	fz_check(wal_replay(w, on_entry, &a, err, sizeof(err)) == 0, "replay of a readable file");
	fz_check(wal_size(w) <= (size < 8 ? 8 : size), "replay never grows the file");
	fz_check(a.bytes + 20 * (size_t)a.n + 8 <= wal_size(w), "entries lie inside the file");
	fz_check(wal_append(w, mark, sizeof(mark)) == 0, "append after replay");
	wal_close(w);
	fz_check(wal_open(&w, path, err, sizeof(err)) == 0, "reopen");
	fz_check(wal_replay(w, on_entry, &b, err, sizeof(err)) == 0, "second replay");
	fz_check(b.n == a.n + 1 && b.last_len == sizeof(mark) && memcmp(b.last, mark, sizeof(mark)) == 0,
		 "the appended entry comes back after the intact ones");
	wal_close(w);
out:
	unlink(path);
	return 0;
}
