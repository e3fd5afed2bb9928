/*
 * The consensus write-ahead log (see wal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "hist.h"
#include "log.h"
#include "tenderd/types.h"
#include "wal.h"

#define WAL_HDR 8
#define WAL_SUM 16
#define WAL_ENTRY_HDR (4 + WAL_SUM)

struct wal {
	int fd;
	uint64_t size, synced;
	char path[PATH_MAX];
	struct hist fsync; /* seconds each fdatasync of entries took */
};

static void entry_sum(uint8_t out[WAL_SUM], const uint8_t lenbe[4], const uint8_t *p, size_t len)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, WAL_SUM);
	crypto_generichash_update(&st, lenbe, 4);
	crypto_generichash_update(&st, p, len);
	crypto_generichash_final(&st, out, WAL_SUM);
}

static int write_all(int fd, const struct iovec *iov, int n)
{
	struct iovec v[3];
	memcpy(v, iov, (size_t)n * sizeof(*v));
	struct iovec *cur = v;
	while (n > 0) {
		ssize_t k = writev(fd, cur, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)k >= cur->iov_len) {
			k -= (ssize_t)cur->iov_len;
			cur++;
			n--;
		}
		if (n > 0) {
			cur->iov_base = (uint8_t *)cur->iov_base + k;
			cur->iov_len -= (size_t)k;
		}
	}
	return 0;
}

int wal_open(struct wal **out, const char *path, char *err, size_t errlen)
{
	struct wal *w = td_xcalloc(1, sizeof(*w));
	struct stat st;
	char magic[WAL_HDR];
	int rc = TD_EIO;

	*out = NULL;
	hist_init(&w->fsync, hist_latency_le, HIST_LATENCY_N);
	w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	snprintf(w->path, sizeof(w->path), "%s", path);
	if (w->fd < 0 || fstat(w->fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (st.st_size >= WAL_HDR) {
		if (pread(w->fd, magic, WAL_HDR, 0) != WAL_HDR) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (memcmp(magic, WAL_MAGIC, WAL_HDR) != 0) {
			snprintf(err, errlen, "%s: not a tenderd consensus log (or of another format version)", path);
			rc = TD_ECORRUPT;
			goto fail;
		}
		w->size = (uint64_t)st.st_size;
	} else {
		struct iovec v = { (void *)WAL_MAGIC, WAL_HDR };
		if (ftruncate(w->fd, 0) != 0 || lseek(w->fd, 0, SEEK_SET) != 0 || write_all(w->fd, &v, 1) != 0 ||
		    fdatasync(w->fd) != 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		w->size = WAL_HDR;
	}
	if (lseek(w->fd, (off_t)w->size, SEEK_SET) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	w->synced = w->size;
	*out = w;
	return 0;
fail:
	wal_close(w);
	return rc;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

/* Cuts the file at off: what follows is a torn or damaged tail. */
static int cut(struct wal *w, uint64_t off, const char *why, char *err, size_t errlen)
{
	log_warn("%s: ignoring the last %llu bytes (%s): a crash cut the last entry short", w->path,
		 (unsigned long long)(w->size - off), why);
	if (ftruncate(w->fd, (off_t)off) != 0 || lseek(w->fd, (off_t)off, SEEK_SET) < 0) {
		snprintf(err, errlen, "%s: %s", w->path, strerror(errno));
		return TD_EIO;
	}
	w->size = off;
	if (w->synced > off)
		w->synced = off;
	return 0;
}

int wal_replay(struct wal *w, int (*fn)(void *ctx, const uint8_t *p, size_t len), void *ctx, char *err, size_t errlen)
{
	size_t total = (size_t)w->size, got = 0;
	uint8_t *buf = td_xmalloc(total ? total : 1);
	int rc = 0;

	while (got < total) {
		ssize_t k = pread(w->fd, buf + got, total - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			snprintf(err, errlen, "%s: %s", w->path, k < 0 ? strerror(errno) : "file shrank while read");
			free(buf);
			return TD_EIO;
		}
		got += (size_t)k;
	}
	/* Find the intact prefix first, so the file is cut before fn may append. */
	size_t off = WAL_HDR, end = WAL_HDR;
	const char *why = NULL;
	while (off < total) {
		uint8_t sum[WAL_SUM];
		if (total - off < WAL_ENTRY_HDR) {
			why = "short entry header";
			break;
		}
		uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 |
			       buf[off + 3];
		if (len > WAL_ENTRY_MAX || total - off - WAL_ENTRY_HDR < len) {
			why = len > WAL_ENTRY_MAX ? "bad entry length" : "short entry";
			break;
		}
		entry_sum(sum, buf + off, buf + off + WAL_ENTRY_HDR, len);
		if (sodium_memcmp(sum, buf + off + 4, WAL_SUM) != 0) {
			why = "checksum mismatch";
			break;
		}
		off += WAL_ENTRY_HDR + len;
		end = off;
	}
	if (why && (rc = cut(w, end, why, err, errlen)) != 0)
		goto out;
	for (off = WAL_HDR; off < end;) {
		uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 |
			       buf[off + 3];
		if ((rc = fn(ctx, buf + off + WAL_ENTRY_HDR, len)) != 0)
			break;
		off += WAL_ENTRY_HDR + len;
	}
out:
	free(buf);
	return rc;
}

int wal_append(struct wal *w, const uint8_t *p, size_t len)
{
	uint8_t hdr[WAL_ENTRY_HDR];
	if (len > WAL_ENTRY_MAX)
		return TD_EINVAL;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	entry_sum(hdr + 4, hdr, p, len);
	struct iovec v[2] = { { hdr, sizeof(hdr) }, { (void *)p, len } };
	if (write_all(w->fd, v, 2) != 0) {
		/* A partial entry would be a torn tail in the middle of the file: cut it off now. */
		int e = errno;
		if (ftruncate(w->fd, (off_t)w->size) != 0 || lseek(w->fd, (off_t)w->size, SEEK_SET) < 0)
			log_error("%s: cannot cut a failed write: %s", w->path, strerror(errno));
		log_error("%s: cannot write: %s", w->path, strerror(e));
		return TD_EIO;
	}
	w->size += sizeof(hdr) + len;
	return 0;
}

int wal_sync(struct wal *w)
{
	struct timespec t0, t1;

	if (w->synced == w->size)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fdatasync(w->fd) != 0) {
		log_error("%s: cannot sync: %s", w->path, strerror(errno));
		return TD_EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	hist_observe(&w->fsync, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	w->synced = w->size;
	return 0;
}

int wal_reset(struct wal *w)
{
	if (w->size == WAL_HDR)
		return 0;
	if (ftruncate(w->fd, WAL_HDR) != 0 || lseek(w->fd, WAL_HDR, SEEK_SET) < 0) {
		log_error("%s: cannot empty: %s", w->path, strerror(errno));
		return TD_EIO;
	}
	w->size = WAL_HDR;
	if (w->synced > WAL_HDR)
		w->synced = WAL_HDR;
	return 0;
}

uint64_t wal_size(const struct wal *w)
{
	return w->size;
}

const struct hist *wal_fsync_hist(const struct wal *w)
{
	return &w->fsync;
}

uint64_t wal_synced(const struct wal *w)
{
	return w->synced;
}

const char *wal_path(const struct wal *w)
{
	return w->path;
}
