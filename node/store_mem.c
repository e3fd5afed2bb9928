/*
 * store_mem: named in-memory stores for the simulator (see store.h; store.c
 * reaches this file through store_int.h).
 *
 * A store's contents are an immutable AVL tree ordered bytewise, as LevelDB
 * orders keys. Versions share nodes, each counted by reference: a put or a
 * delete copies the path to its key (O(log n) new nodes) and leaves every
 * older version whole. That turns what a simulated disk needs into pointer
 * copies: a cursor keeps the root it was made from (LevelDB's implicit
 * snapshot), a synced write sets the durable root to the live one, and a
 * crash sets the live root back to the durable one. Key and value sit in one
 * allocation (struct mem_kv), also counted, so copying a path never copies
 * bytes.
 *
 * Ownership: a world owns its dbs (a list in creation order); a db owns one
 * reference to each of its two roots; a cursor owns one to its root; a node
 * owns one to each child and to its kv. Counts are plain integers: a world
 * belongs to one thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/codec.h"
#include "tenderd/types.h"
#include "store_int.h"

/*
 * Path a cursor can hold. An AVL tree of height h has at least F(h+2)-1
 * nodes (F: Fibonacci), so height 64 needs some 10^13 keys.
 */
#define MEM_DEPTH_MAX 64

struct mem_kv {
	size_t refs;
	size_t klen;
	size_t vlen;
	uint8_t b[]; /* the key, then the value */
};

struct mem_node {
	size_t refs;
	struct mem_node *left;  /* keys below kv's */
	struct mem_node *right; /* keys above kv's */
	struct mem_kv *kv;
	int height; /* 1 for a leaf */
};

struct store_mem_db {
	struct store_mem_db *next; /* the world's list */
	char *name;
	struct mem_node *live;    /* what reads and new cursors see */
	struct mem_node *durable; /* what a crash leaves */
	bool open;
	size_t cursors;      /* live cursors over it; it cannot close while any */
	uint64_t version;    /* bumped by every change of live */
	struct td_buf file;  /* the records file */
	size_t file_durable; /* what a crash leaves of it */
};

struct store_mem_world {
	struct store_mem_db *dbs;
};

struct store_mem_cursor {
	struct store_mem_db *db;
	struct mem_node *root;                /* the snapshot; owned reference */
	int depth;                            /* nodes on path; 0: not valid */
	struct mem_node *path[MEM_DEPTH_MAX]; /* root ... the current node */
};

/* ---- keys and nodes ------------------------------------------------------ */

/* LevelDB's bytewise order: memcmp over the common length, then shorter first. */
static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;

	if (c != 0)
		return c;
	return an < bn ? -1 : an > bn;
}

static int node_cmp(const void *key, size_t klen, const struct mem_node *n)
{
	return key_cmp(key, klen, n->kv->b, n->kv->klen);
}

static struct mem_kv *kv_new(const void *key, size_t klen, const void *val, size_t vlen)
{
	struct mem_kv *kv = td_xmalloc(sizeof(*kv) + klen + vlen);

	kv->refs = 1;
	kv->klen = klen;
	kv->vlen = vlen;
	if (klen)
		memcpy(kv->b, key, klen);
	if (vlen)
		memcpy(kv->b + klen, val, vlen);
	return kv;
}

static struct mem_kv *kv_ref(struct mem_kv *kv)
{
	kv->refs++;
	return kv;
}

static void kv_unref(struct mem_kv *kv)
{
	if (--kv->refs == 0)
		free(kv);
}

static struct mem_node *node_ref(struct mem_node *n)
{
	if (n)
		n->refs++;
	return n;
}

/* Drops a reference; the last one frees the node and drops its own. */
static void node_unref(struct mem_node *n)
{
	while (n && --n->refs == 0) {
		struct mem_node *right = n->right;

		node_unref(n->left);
		kv_unref(n->kv);
		free(n);
		n = right;
	}
}

static int height(const struct mem_node *n)
{
	return n ? n->height : 0;
}

/* A new node; takes the references passed in. */
static struct mem_node *node_new(struct mem_node *left, struct mem_kv *kv, struct mem_node *right)
{
	struct mem_node *n = td_xmalloc(sizeof(*n));
	int hl = height(left), hr = height(right);

	n->refs = 1;
	n->left = left;
	n->right = right;
	n->kv = kv;
	n->height = 1 + (hl > hr ? hl : hr);
	return n;
}

/*
 * A node over left, kv and right whose heights differ by at most 2, rotated
 * back to AVL balance; takes the references passed in.
 */
static struct mem_node *balance(struct mem_node *left, struct mem_kv *kv, struct mem_node *right)
{
	struct mem_node *t;

	if (height(left) > height(right) + 1) {
		struct mem_node *ll = left->left, *lr = left->right;

		if (height(ll) >= height(lr))
			t = node_new(node_ref(ll), kv_ref(left->kv), node_new(node_ref(lr), kv, right));
		else
			t = node_new(node_new(node_ref(ll), kv_ref(left->kv), node_ref(lr->left)), kv_ref(lr->kv),
				     node_new(node_ref(lr->right), kv, right));
		node_unref(left);
		return t;
	}
	if (height(right) > height(left) + 1) {
		struct mem_node *rl = right->left, *rr = right->right;

		if (height(rr) >= height(rl))
			t = node_new(node_new(left, kv, node_ref(rl)), kv_ref(right->kv), node_ref(rr));
		else
			t = node_new(node_new(left, kv, node_ref(rl->left)), kv_ref(rl->kv),
				     node_new(node_ref(rl->right), kv_ref(right->kv), node_ref(rr)));
		node_unref(right);
		return t;
	}
	return node_new(left, kv, right);
}

/* t with kv in place of any entry of its key; takes kv, leaves t as it was. */
static struct mem_node *tree_put(struct mem_node *t, struct mem_kv *kv)
{
	int c;

	if (!t)
		return node_new(NULL, kv, NULL);
	c = node_cmp(kv->b, kv->klen, t);
	if (c < 0)
		return balance(tree_put(t->left, kv), kv_ref(t->kv), node_ref(t->right));
	if (c > 0)
		return balance(node_ref(t->left), kv_ref(t->kv), tree_put(t->right, kv));
	return node_new(node_ref(t->left), kv, node_ref(t->right));
}

/* t without its first entry, whose kv goes to *min (a reference); t is not empty. */
static struct mem_node *tree_del_min(struct mem_node *t, struct mem_kv **min)
{
	if (!t->left) {
		*min = kv_ref(t->kv);
		return node_ref(t->right);
	}
	return balance(tree_del_min(t->left, min), kv_ref(t->kv), node_ref(t->right));
}

/* t without key, which the caller found in it; leaves t as it was. */
static struct mem_node *tree_del(struct mem_node *t, const void *key, size_t klen)
{
	int c = node_cmp(key, klen, t);
	struct mem_kv *min;
	struct mem_node *right;

	if (c < 0)
		return balance(tree_del(t->left, key, klen), kv_ref(t->kv), node_ref(t->right));
	if (c > 0)
		return balance(node_ref(t->left), kv_ref(t->kv), tree_del(t->right, key, klen));
	if (!t->left)
		return node_ref(t->right);
	if (!t->right)
		return node_ref(t->left);
	right = tree_del_min(t->right, &min);
	return balance(node_ref(t->left), min, right);
}

static const struct mem_node *tree_find(const struct mem_node *t, const void *key, size_t klen)
{
	while (t) {
		int c = node_cmp(key, klen, t);

		if (c == 0)
			return t;
		t = c < 0 ? t->left : t->right;
	}
	return NULL;
}

/* Replaces the reference in *slot with a new reference to t. */
static void set_root(struct mem_node **slot, struct mem_node *t)
{
	node_ref(t);
	node_unref(*slot);
	*slot = t;
}

/* ---- worlds and dbs ------------------------------------------------------ */

struct store_mem_world *store_mem_world_new(void)
{
	return td_xcalloc(1, sizeof(struct store_mem_world));
}

void store_mem_world_free(struct store_mem_world *w)
{
	struct store_mem_db *db, *next;

	if (!w)
		return;
	for (db = w->dbs; db; db = next) {
		next = db->next;
		if (db->open)
			abort(); /* the caller closes its stores first */
		node_unref(db->live);
		node_unref(db->durable);
		td_buf_free(&db->file);
		free(db->name);
		free(db);
	}
	free(w);
}

static struct store_mem_db *world_find(const struct store_mem_world *w, const char *name)
{
	struct store_mem_db *db;

	for (db = w->dbs; db; db = db->next)
		if (strcmp(db->name, name) == 0)
			return db;
	return NULL;
}

int store_mem_crash(struct store_mem_world *w, const char *name)
{
	struct store_mem_db *db = world_find(w, name);

	if (!db)
		return TD_ENOTFOUND;
	if (db->open)
		abort(); /* the process owning it closes it as it dies */
	set_root(&db->live, db->durable);
	db->file.sb.size = db->file_durable;
	db->version++;
	return 0;
}

uint64_t store_mem_version(const struct store_mem_world *w, const char *name)
{
	const struct store_mem_db *db = world_find(w, name);

	return db ? db->version : 0;
}

int store_mem_sync(struct store_mem_world *w, const char *name)
{
	struct store_mem_db *db = world_find(w, name);

	if (!db)
		return TD_ENOTFOUND;
	set_root(&db->durable, db->live);
	db->file_durable = db->file.sb.size;
	return 0;
}

int store_mem_attach(struct store_mem_db **out, struct store_mem_world *w, const char *name, char *err, size_t errlen)
{
	struct store_mem_db *db = world_find(w, name), **tail;

	*out = NULL;
	if (db && db->open) {
		if (err && errlen)
			snprintf(err, errlen, "mem:%s: already open", name);
		return TD_EIO;
	}
	if (!db) {
		db = td_xcalloc(1, sizeof(*db));
		td_buf_init(&db->file);
		db->name = td_xstrndup(name, strlen(name));
		for (tail = &w->dbs; *tail; tail = &(*tail)->next)
			;
		*tail = db;
	}
	db->open = true;
	*out = db;
	return 0;
}

void store_mem_detach(struct store_mem_db *db)
{
	if (db->cursors)
		abort(); /* iterators are freed before their store closes */
	db->open = false;
}

int store_mem_get(const struct store_mem_db *db, const void *key, size_t klen, uint8_t **val, size_t *vlen)
{
	const struct mem_node *n = tree_find(db->live, key, klen);

	*val = NULL;
	*vlen = 0;
	if (!n)
		return TD_ENOTFOUND;
	*val = td_xmalloc(n->kv->vlen);
	if (n->kv->vlen)
		memcpy(*val, n->kv->b + n->kv->klen, n->kv->vlen);
	*vlen = n->kv->vlen;
	return 0;
}

void store_mem_put(struct store_mem_db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct mem_node *t = tree_put(db->live, kv_new(key, klen, val, vlen));

	node_unref(db->live);
	db->live = t;
	db->version++;
}

void store_mem_delete(struct store_mem_db *db, const void *key, size_t klen)
{
	struct mem_node *t;

	if (!tree_find(db->live, key, klen))
		return;
	t = tree_del(db->live, key, klen);
	node_unref(db->live);
	db->live = t;
	db->version++;
}

void store_mem_written(struct store_mem_db *db, bool sync)
{
	if (sync) {
		set_root(&db->durable, db->live);
		db->file_durable = db->file.sb.size;
	}
}

void store_mem_file_append(struct store_mem_db *db, const void *data, size_t len, uint64_t *off)
{
	*off = db->file.sb.size;
	td_enc_raw(&db->file, data, len);
}

uint64_t store_mem_file_end(const struct store_mem_db *db)
{
	return db->file.sb.size;
}

int store_mem_file_read(const struct store_mem_db *db, uint64_t off, size_t len, uint8_t **out)
{
	*out = NULL;
	if (off > db->file.sb.size || len > db->file.sb.size - off)
		return TD_ECORRUPT;
	*out = td_xmalloc(len ? len : 1);
	memcpy(*out, db->file.sb.data + off, len);
	return 0;
}

void store_mem_file_truncate(struct store_mem_db *db, uint64_t end)
{
	if (end < db->file.sb.size)
		db->file.sb.size = end;
	if (db->file_durable > db->file.sb.size)
		db->file_durable = db->file.sb.size;
}

/* ---- cursors ------------------------------------------------------------- */

struct store_mem_cursor *store_mem_cursor_new(struct store_mem_db *db)
{
	struct store_mem_cursor *c = td_xmalloc(sizeof(*c));

	c->db = db;
	c->root = node_ref(db->live);
	c->depth = 0;
	db->cursors++;
	return c;
}

void store_mem_cursor_free(struct store_mem_cursor *c)
{
	if (!c)
		return;
	c->db->cursors--;
	node_unref(c->root);
	free(c);
}

static void push(struct store_mem_cursor *c, struct mem_node *n)
{
	if (c->depth == MEM_DEPTH_MAX)
		abort(); /* see MEM_DEPTH_MAX */
	c->path[c->depth++] = n;
}

void store_mem_cursor_seek(struct store_mem_cursor *c, const void *key, size_t klen)
{
	struct mem_node *n = c->root;
	int keep = 0; /* path length down to the last node whose key is >= key */

	c->depth = 0;
	while (n) {
		push(c, n);
		if (node_cmp(key, klen, n) <= 0) {
			keep = c->depth;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	c->depth = keep;
}

void store_mem_cursor_seek_last(struct store_mem_cursor *c)
{
	c->depth = 0;
	for (struct mem_node *n = c->root; n; n = n->right)
		push(c, n);
}

bool store_mem_cursor_valid(const struct store_mem_cursor *c)
{
	return c->depth > 0;
}

void store_mem_cursor_next(struct store_mem_cursor *c)
{
	struct mem_node *n = c->path[c->depth - 1];

	if (n->right) {
		for (n = n->right; n; n = n->left)
			push(c, n);
		return;
	}
	/* up to the first ancestor reached from its left: it comes next */
	while (--c->depth > 0) {
		if (c->path[c->depth - 1]->left == n)
			return;
		n = c->path[c->depth - 1];
	}
}

void store_mem_cursor_prev(struct store_mem_cursor *c)
{
	struct mem_node *n = c->path[c->depth - 1];

	if (n->left) {
		for (n = n->left; n; n = n->right)
			push(c, n);
		return;
	}
	while (--c->depth > 0) {
		if (c->path[c->depth - 1]->right == n)
			return;
		n = c->path[c->depth - 1];
	}
}

const uint8_t *store_mem_cursor_key(const struct store_mem_cursor *c, size_t *n)
{
	const struct mem_kv *kv = c->path[c->depth - 1]->kv;

	*n = kv->klen;
	return kv->b;
}

const uint8_t *store_mem_cursor_value(const struct store_mem_cursor *c, size_t *n)
{
	const struct mem_kv *kv = c->path[c->depth - 1]->kv;

	*n = kv->vlen;
	return kv->b + kv->klen;
}
