/*
 * store: LevelDB through its C API, or an in-memory store (see store.h).
 *
 * struct store and struct store_iter carry their backend's tag, and each
 * function switches on it. The memory backend (store_mem.c) offers what
 * LevelDB's iterator does (seek, seek to last, next, prev), so the prefix and
 * direction logic below is one piece of code over both, and the two agree on
 * every seek by construction. Batches are LevelDB write batches on both:
 * a write to a store in memory replays the batch's operations in order
 * (leveldb_writebatch_iterate), so production writes pay for no copy.
 *
 * Every LevelDB object (options, read/write options, the block cache, the
 * filter policy, the handle) is created in store_open() and destroyed in
 * store_close(), the handle first. Reads verify checksums (the read options
 * of every get and iterator have verify_checksums set; paranoid_checks only
 * makes LevelDB check the log and manifest it replays at open and the tables
 * it compacts, and a table's blocks are read, and checked, only when a read
 * needs them, so damage in a block nothing reads goes unseen until then).
 * An iterator reports a damaged block at the step that meets it
 * (store_iter_next).
 *
 * Memory is bounded whatever the size of the database: an LRU block cache
 * of STORE_CACHE bytes, a write buffer (memtable) of STORE_WRITE_BUFFER
 * bytes, and at most STORE_OPEN_FILES open table files, each holding its
 * index and Bloom filter in memory; tables of STORE_FILE_SIZE bytes keep
 * that count low. The Bloom filter (10 bits a key) answers most lookups of
 * a missing key, the common case when checking new records, without
 * reading a block.
 * Values handed to callers are copied out of LevelDB's allocations so that
 * callers free them with free() like everything else in tenderd.
 *
 * Reverse prefix iteration seeks to the prefix's successor (the prefix with
 * its last byte below 0xff incremented, bytes after it dropped) and steps
 * back once; a prefix of all 0xff bytes has no successor and starts at the
 * last key of the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <leveldb/c.h>

#include "tenderd/codec.h"
#include "tenderd/types.h"
#include "store.h"
#include "store_int.h"

#define STORE_CACHE (8u << 20)        /* LRU block cache, bytes */
/*
 * Memtable size before it is written out. Measured with bench/chain_bench.c
 * (blocks of 4,096 1 KiB records, whose batch is about 15 MiB): 16 MiB, more
 * than one block's batch, cuts LevelDB's compaction CPU by about a third
 * (some 30 us a record) and its level-0 write throttling; 8 MiB gains
 * nothing over 4 MiB. On the 4-node testnet (max load, a validator killed,
 * max load on three, then 1,346 records/s) it took three validators from
 * 2,731 to 3,390-3,517 records/s and the latency at 1,346/s from p50 227 ms
 * to 100-108 ms, with peak RSS unchanged within noise (146-159 MB).
 */
#define STORE_WRITE_BUFFER (16u << 20)
#define STORE_OPEN_FILES 200          /* table files kept open */
#define STORE_FILE_SIZE (8u << 20)    /* target size of one table file */
#define STORE_BLOOM_BITS 10           /* Bloom filter bits a key */

enum store_kind {
	STORE_LEVELDB,
	STORE_MEM,
};

struct store {
	enum store_kind kind;
	/* STORE_MEM: the named store in its world; the fields below stay NULL */
	struct store_mem_db *mem;
	/* STORE_LEVELDB */
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *filter;
	leveldb_readoptions_t *ropts;
	leveldb_writeoptions_t *wopts;      /* sync off */
	leveldb_writeoptions_t *wopts_sync; /* sync on */
	int fd;                             /* the records file */
	uint64_t fsize;                     /* its length on disk */
	struct td_buf fbuf;                 /* appends not yet written */
	bool funsynced; /* written since the last fdatasync */
};

struct store_batch {
	leveldb_writebatch_t *wb;
	size_t count;
};

struct store_iter {
	enum store_kind kind;
	leveldb_iterator_t *it; /* STORE_LEVELDB */
	struct store_mem_cursor *mc; /* STORE_MEM */
	uint8_t *prefix; /* owned copy */
	size_t plen;
	bool reverse;
	bool started; /* false until the first store_iter_next() */
	int error;
};

static void set_err(char *err, size_t errlen, const char *what, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, msg ? msg : "unknown error");
}

/* Opens (creating) the records file in LevelDB's directory path; its length in fsize. */
static int open_file(struct store *s, const char *path, char *err, size_t errlen)
{
	char fp[4096];
	struct stat st;

	if ((size_t)snprintf(fp, sizeof(fp), "%s/%s", path, STORE_RECORDS_FILE) >= sizeof(fp)) {
		set_err(err, errlen, path, "path too long");
		return TD_EIO;
	}
	s->fd = open(fp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0 || fstat(s->fd, &st) != 0) {
		set_err(err, errlen, fp, strerror(errno));
		return TD_EIO;
	}
	s->fsize = (uint64_t)st.st_size;
	return 0;
}

/*
 * LevelDB runs every flush and compaction of the process on one background
 * thread, started the first time any database schedules work, as a child
 * of the thread that asked; Linux threads inherit their nice value. So,
 * once per process and before the first store opens, a helper thread
 * STORE_COMPACTION_NICE nicer than the caller (at most 19) opens a scratch
 * database beside path and asks for a compaction of it, which starts that
 * thread; the scratch database is then removed. Compactions of every store
 * then yield the CPU to the event loop (consensus, gossip, requests) and
 * use what it leaves; when they fall behind, LevelDB throttles and then
 * stops writes (by its count of level-0 files), which blocks the loop
 * until they catch up. A failure here changes nothing but the priority.
 */
static void *background_start(void *arg)
{
	const char *scratch = arg;
	const id_t tid = (id_t)syscall(SYS_gettid);
	leveldb_options_t *o;
	leveldb_t *db;
	char *lerr = NULL;
	int prio;

	errno = 0;
	prio = getpriority(PRIO_PROCESS, tid);
	if (errno != 0)
		return NULL;
	prio = prio + STORE_COMPACTION_NICE > 19 ? 19 : prio + STORE_COMPACTION_NICE;
	if (setpriority(PRIO_PROCESS, tid, prio) != 0)
		return NULL;
	o = leveldb_options_create();
	leveldb_options_set_create_if_missing(o, 1);
	db = leveldb_open(o, scratch, &lerr);
	leveldb_free(lerr);
	if (db) {
		leveldb_compact_range(db, NULL, 0, NULL, 0);
		leveldb_close(db);
	}
	lerr = NULL;
	leveldb_destroy_db(o, scratch, &lerr);
	leveldb_free(lerr);
	rmdir(scratch);
	leveldb_options_destroy(o);
	return NULL;
}

static void background_nice(const char *path)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool done;
	char scratch[4096];
	pthread_t t;

	pthread_mutex_lock(&lock);
	if (!done && snprintf(scratch, sizeof(scratch), "%s.start-%ld", path, (long)getpid()) < (int)sizeof(scratch) &&
	    pthread_create(&t, NULL, background_start, scratch) == 0) {
		pthread_join(t, NULL);
		done = true;
	}
	pthread_mutex_unlock(&lock);
}

int store_open(struct store **out, const char *path, char *err, size_t errlen)
{
	struct store *s = td_xcalloc(1, sizeof(*s));
	char *lerr = NULL;

	s->kind = STORE_LEVELDB;
	s->fd = -1;
	td_buf_init(&s->fbuf);
	s->opts = leveldb_options_create();
	leveldb_options_set_create_if_missing(s->opts, 1);
	leveldb_options_set_paranoid_checks(s->opts, 1);
	s->cache = leveldb_cache_create_lru(STORE_CACHE);
	leveldb_options_set_cache(s->opts, s->cache);
	s->filter = leveldb_filterpolicy_create_bloom(STORE_BLOOM_BITS);
	leveldb_options_set_filter_policy(s->opts, s->filter);
	leveldb_options_set_write_buffer_size(s->opts, STORE_WRITE_BUFFER);
	leveldb_options_set_max_open_files(s->opts, STORE_OPEN_FILES);
	leveldb_options_set_max_file_size(s->opts, STORE_FILE_SIZE);
	s->ropts = leveldb_readoptions_create();
	leveldb_readoptions_set_verify_checksums(s->ropts, 1);
	s->wopts = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(s->wopts, 0);
	s->wopts_sync = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(s->wopts_sync, 1);

	background_nice(path);
	s->db = leveldb_open(s->opts, path, &lerr);
	if (lerr || !s->db) {
		set_err(err, errlen, path, lerr);
		leveldb_free(lerr);
		goto fail;
	}
	if (open_file(s, path, err, errlen) != 0)
		goto fail;
	*out = s;
	return 0;

fail:
	if (s->db)
		leveldb_close(s->db);
	if (s->fd >= 0)
		close(s->fd);
	td_buf_free(&s->fbuf);
	leveldb_writeoptions_destroy(s->wopts_sync);
	leveldb_writeoptions_destroy(s->wopts);
	leveldb_readoptions_destroy(s->ropts);
	leveldb_options_destroy(s->opts);
	leveldb_filterpolicy_destroy(s->filter);
	leveldb_cache_destroy(s->cache);
	free(s);
	*out = NULL;
	return TD_EIO;
}

int store_open_mem(struct store **out, struct store_mem_world *w, const char *name, char *err, size_t errlen)
{
	struct store_mem_db *db;
	int rc = store_mem_attach(&db, w, name, err, errlen);

	*out = NULL;
	if (rc != 0)
		return rc;
	*out = td_xcalloc(1, sizeof(**out));
	(*out)->kind = STORE_MEM;
	(*out)->mem = db;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		store_mem_detach(s->mem);
		free(s);
		return;
	}
	leveldb_close(s->db);
	if (s->fd >= 0)
		close(s->fd);
	td_buf_free(&s->fbuf);
	leveldb_writeoptions_destroy(s->wopts_sync);
	leveldb_writeoptions_destroy(s->wopts);
	leveldb_readoptions_destroy(s->ropts);
	leveldb_options_destroy(s->opts);
	leveldb_filterpolicy_destroy(s->filter);
	leveldb_cache_destroy(s->cache);
	free(s);
}

int store_get(const struct store *s, const void *key, size_t klen, uint8_t **val, size_t *vlen)
{
	char *lerr = NULL;
	size_t n = 0;
	char *v;

	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		return store_mem_get(s->mem, key, klen, val, vlen);
	}
	v = leveldb_get(s->db, s->ropts, key, klen, &n, &lerr);
	*val = NULL;
	*vlen = 0;
	if (lerr) {
		leveldb_free(lerr);
		leveldb_free(v);
		return TD_EIO;
	}
	if (!v)
		return TD_ENOTFOUND;
	if (n == 0) {
		leveldb_free(v);
		v = td_xmalloc(1);
	}
	/*
	 * LevelDB's C API hands out values from malloc() (leveldb_free is free()),
	 * so the value goes to the caller as it is: a block is megabytes, and a
	 * copy of it would cost as much again.
	 */
	*val = (uint8_t *)v;
	*vlen = n;
	return 0;
}

bool store_has(const struct store *s, const void *key, size_t klen)
{
	uint8_t *v;
	size_t n;

	if (store_get(s, key, klen, &v, &n) != 0)
		return false;
	free(v);
	return true;
}

struct store_batch *store_batch_new(void)
{
	struct store_batch *b = td_xcalloc(1, sizeof(*b));

	b->wb = leveldb_writebatch_create();
	return b;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	leveldb_writebatch_destroy(b->wb);
	free(b);
}

void store_batch_clear(struct store_batch *b)
{
	leveldb_writebatch_clear(b->wb);
	b->count = 0;
}

void store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
	leveldb_writebatch_put(b->wb, key, klen, val, vlen);
	b->count++;
}

void store_batch_delete(struct store_batch *b, const void *key, size_t klen)
{
	leveldb_writebatch_delete(b->wb, key, klen);
	b->count++;
}

size_t store_batch_count(const struct store_batch *b)
{
	return b->count;
}

static void mem_put(void *db, const char *key, size_t klen, const char *val, size_t vlen)
{
	store_mem_put(db, key, klen, val, vlen);
}

static void mem_delete(void *db, const char *key, size_t klen)
{
	store_mem_delete(db, key, klen);
}

/* ---- the records file ---------------------------------------------------- */

void store_file_append(struct store *s, const void *data, size_t len, uint64_t *off)
{
	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		store_mem_file_append(s->mem, data, len, off);
		return;
	}
	*off = s->fsize + s->fbuf.sb.size;
	td_enc_raw(&s->fbuf, data, len);
}

uint64_t store_file_end(const struct store *s)
{
	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		return store_mem_file_end(s->mem);
	}
	return s->fsize + s->fbuf.sb.size;
}

int store_file_read(const struct store *s, uint64_t off, size_t len, uint8_t **out)
{
	uint8_t *p;
	size_t got = 0;

	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		return store_mem_file_read(s->mem, off, len, out);
	}
	*out = NULL;
	if (off > s->fsize + s->fbuf.sb.size || len > s->fsize + s->fbuf.sb.size - off)
		return TD_ECORRUPT;
	p = td_xmalloc(len ? len : 1);
	while (got < len && off + got < s->fsize) {
		size_t want = len - got;
		if (off + got + want > s->fsize)
			want = (size_t)(s->fsize - off - got);
		ssize_t n = pread(s->fd, p + got, want, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(p);
			return n == 0 ? TD_ECORRUPT : TD_EIO;
		}
		got += (size_t)n;
	}
	if (got < len) /* the rest is still in the buffer */
		memcpy(p + got, s->fbuf.sb.data + (off + got - s->fsize), len - got);
	*out = p;
	return 0;
}

int store_file_truncate(struct store *s, uint64_t end, char *err, size_t errlen)
{
	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		store_mem_file_truncate(s->mem, end);
		return 0;
	}
	if (end >= s->fsize) {
		if (end - s->fsize < s->fbuf.sb.size)
			s->fbuf.sb.size = (size_t)(end - s->fsize);
		return 0;
	}
	s->fbuf.sb.size = 0;
	if (ftruncate(s->fd, (off_t)end) != 0 || fdatasync(s->fd) != 0) {
		set_err(err, errlen, "records file", strerror(errno));
		return TD_EIO;
	}
	s->fsize = end;
	return 0;
}

/* Writes the buffered appends at the file's end; with sync, fdatasync()s what was written. */
static int flush_file(struct store *s, bool sync, char *err, size_t errlen)
{
	size_t done = 0;

	while (done < s->fbuf.sb.size) {
		ssize_t n = pwrite(s->fd, s->fbuf.sb.data + done, s->fbuf.sb.size - done, (off_t)(s->fsize + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_err(err, errlen, "records file write", n < 0 ? strerror(errno) : "no progress");
			return TD_EIO;
		}
		done += (size_t)n;
	}
	s->fsize += done;
	if (done > 0)
		s->funsynced = true;
	s->fbuf.sb.size = 0;
	if (sync && s->funsynced) {
		if (fdatasync(s->fd) != 0) {
			set_err(err, errlen, "records file sync", strerror(errno));
			return TD_EIO;
		}
		s->funsynced = false;
	}
	return 0;
}

int store_write(struct store *s, const struct store_batch *b, bool sync, char *err, size_t errlen)
{
	char *lerr = NULL;

	switch (s->kind) {
	case STORE_LEVELDB:
		break;
	case STORE_MEM:
		leveldb_writebatch_iterate(b->wb, s->mem, mem_put, mem_delete);
		store_mem_written(s->mem, sync);
		return 0;
	}
	if (flush_file(s, sync, err, errlen) != 0)
		return TD_EIO;
	/* leveldb_write does not modify the batch; its prototype just lacks const. */
	leveldb_write(s->db, sync ? s->wopts_sync : s->wopts, (leveldb_writebatch_t *)b->wb, &lerr);
	if (lerr) {
		set_err(err, errlen, "store write", lerr);
		leveldb_free(lerr);
		return TD_EIO;
	}
	return 0;
}

/*
 * The cursor under an iterator, one LevelDB iterator step each: seek puts it
 * at the first key >= key, seek_last at the last key; either leaves it not
 * valid when there is no such key. next and prev need a valid cursor.
 */
static void cur_seek(struct store_iter *it, const void *key, size_t klen)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_seek(it->it, key, klen);
		return;
	case STORE_MEM:
		store_mem_cursor_seek(it->mc, key, klen);
		return;
	}
}

static void cur_seek_last(struct store_iter *it)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_seek_to_last(it->it);
		return;
	case STORE_MEM:
		store_mem_cursor_seek_last(it->mc);
		return;
	}
}

static bool cur_valid(const struct store_iter *it)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		return leveldb_iter_valid(it->it);
	case STORE_MEM:
		return store_mem_cursor_valid(it->mc);
	}
	abort();
}

static void cur_next(struct store_iter *it)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_next(it->it);
		return;
	case STORE_MEM:
		store_mem_cursor_next(it->mc);
		return;
	}
}

static void cur_prev(struct store_iter *it)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_prev(it->it);
		return;
	case STORE_MEM:
		store_mem_cursor_prev(it->mc);
		return;
	}
}

static const uint8_t *cur_key(const struct store_iter *it, size_t *n)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		return (const uint8_t *)leveldb_iter_key(it->it, n);
	case STORE_MEM:
		return store_mem_cursor_key(it->mc, n);
	}
	abort();
}

static const uint8_t *cur_value(const struct store_iter *it, size_t *n)
{
	switch (it->kind) {
	case STORE_LEVELDB:
		return (const uint8_t *)leveldb_iter_value(it->it, n);
	case STORE_MEM:
		return store_mem_cursor_value(it->mc, n);
	}
	abort();
}

/* 0, or TD_EIO if the cursor stopped on a read error (only LevelDB has them). */
static int cur_error(const struct store_iter *it)
{
	char *lerr = NULL;

	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_get_error(it->it, &lerr);
		if (!lerr)
			return 0;
		leveldb_free(lerr);
		return TD_EIO;
	case STORE_MEM:
		return 0;
	}
	abort();
}

/* Positions it at the last key with its prefix (or before nothing). */
static void iter_seek_last(struct store_iter *it)
{
	size_t n = it->plen;

	if (n == 0) {
		cur_seek_last(it);
		return;
	}
	/* successor: drop trailing 0xff bytes, increment the last remaining one */
	while (n > 0 && it->prefix[n - 1] == 0xff)
		n--;
	if (n == 0) {
		cur_seek_last(it);
		return;
	}
	uint8_t *succ = td_xmalloc(n);
	memcpy(succ, it->prefix, n);
	succ[n - 1]++;
	cur_seek(it, succ, n);
	free(succ);
	if (cur_valid(it))
		cur_prev(it);
	else
		cur_seek_last(it);
}

struct store_iter *store_iter_new(const struct store *s, const void *prefix, size_t plen, bool reverse)
{
	struct store_iter *it = td_xcalloc(1, sizeof(*it));

	it->kind = s->kind;
	switch (s->kind) {
	case STORE_LEVELDB:
		it->it = leveldb_create_iterator(s->db, s->ropts);
		break;
	case STORE_MEM:
		it->mc = store_mem_cursor_new(s->mem);
		break;
	}
	it->prefix = td_xmalloc(plen);
	if (plen)
		memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	it->reverse = reverse;
	if (reverse)
		iter_seek_last(it);
	else
		cur_seek(it, it->prefix, plen);
	return it;
}

void store_iter_seek(struct store_iter *it, const void *key, size_t klen)
{
	size_t m = klen < it->plen ? klen : it->plen;
	int c = m ? memcmp(key, it->prefix, m) : 0;

	it->started = false;
	if (c == 0 && klen < it->plen)
		c = -1; /* a proper prefix of the prefix sorts before the range */
	if (c < 0 && !it->reverse) {
		cur_seek(it, it->prefix, it->plen);
		return;
	}
	if (c > 0 && it->reverse) {
		iter_seek_last(it);
		return;
	}
	cur_seek(it, key, klen);
	if (!it->reverse)
		return;
	if (!cur_valid(it)) {
		cur_seek_last(it);
		return;
	}
	size_t n;
	const uint8_t *k = cur_key(it, &n);
	if (n != klen || (klen && memcmp(k, key, klen) != 0))
		cur_prev(it); /* first key > key: step back to the last key < key */
}

bool store_iter_next(struct store_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val, size_t *vlen)
{
	if (it->started && cur_valid(it)) {
		if (it->reverse)
			cur_prev(it);
		else
			cur_next(it);
	}
	it->started = true;
	/*
	 * LevelDB's iterator steps over a table block that fails its checksum
	 * and goes on with the next one, keeping the error in its status only:
	 * the keys of the damaged block are silently missing from the walk. So
	 * the status is checked at every step, not only at the end, and the
	 * first error ends the iteration.
	 */
	if (it->error == 0)
		it->error = cur_error(it);
	if (it->error != 0 || !cur_valid(it))
		return false;
	size_t kn, vn;
	const uint8_t *k = cur_key(it, &kn);
	if (kn < it->plen || (it->plen && memcmp(k, it->prefix, it->plen) != 0))
		return false;
	const uint8_t *v = cur_value(it, &vn);
	*key = k;
	*klen = kn;
	if (val)
		*val = v;
	if (vlen)
		*vlen = vn;
	return true;
}

int store_iter_error(const struct store_iter *it)
{
	return it->error;
}

void store_iter_free(struct store_iter *it)
{
	if (!it)
		return;
	switch (it->kind) {
	case STORE_LEVELDB:
		leveldb_iter_destroy(it->it);
		break;
	case STORE_MEM:
		store_mem_cursor_free(it->mc);
		break;
	}
	free(it->prefix);
	free(it);
}
