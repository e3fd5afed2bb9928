/*
 * Writes the seed corpora of the fuzz targets: fuzz-corpus-gen DIR writes DIR/<target>/<seed>
 * (DIR is tests/fuzz/corpus). The seeds are real encodings: the records, blocks and commits of
 * the fuzz world's chain (world.c: fixed key, fixed times, so the bytes are the same on every
 * run), messages built from them by the encoders of proto/msg.c, the sample releases,
 * files written by config_write, td_genesis_json and signstate_save, and the programs of
 * fuzz_p2p (world.h: handshakes, each corruption of each step, frames of real messages). Files named golden-* and
 * regress-* in the corpus are kept by hand (golden bytes of tests/test_msg.c; inputs of bugs
 * the fuzzers found) and are not touched here.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenderd/block.h"
#include "tenderd/evidence.h"
#include "tenderd/governance.h"
#include "tenderd/json.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "chain.h"
#include "config.h"
#include "signstate.h"
#include "world.h"

static const char *root;

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	fz_write_file(path, data, len);
}

static void put_buf(const char *target, const char *name, struct td_buf *b)
{
	put(target, name, b->sb.data, b->sb.size);
	td_buf_free(b);
	td_buf_init(b);
}

static void put_str(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

/* An option byte, then text. */
static void put_opt(const char *target, const char *name, uint8_t opt, const char *s)
{
	size_t n = strlen(s);
	uint8_t *buf = malloc(n + 1);
	buf[0] = opt;
	memcpy(buf + 1, s, n);
	put(target, name, buf, n + 1);
	free(buf);
}

static char *sample_text(const char *name)
{
	json_t *j = fz_sample(name);
	char *s = td_json_dump(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static void gen_chain(struct fz_world *w)
{
	char name[64];
	struct td_buf b;
	uint64_t height = chain_height(w->c);

	td_buf_init(&b);
	for (uint64_t h = 1; h <= height; h++) {
		uint8_t *blk_bytes, *cm_bytes;
		size_t blen, clen;
		char err[TD_ERRMSG_MAX];
		fz_check(chain_block_raw(w->c, h, &blk_bytes, &blen, &cm_bytes, &clen) == 0, "chain_block_raw");
		snprintf(name, sizeof(name), "block-%llu", (unsigned long long)h);
		put("fuzz_block", name, blk_bytes, blen);
		if (h == height || h == 1)
			put("fuzz_record", name, blk_bytes, blen);
		snprintf(name, sizeof(name), "commit-%llu", (unsigned long long)h);
		put("fuzz_block", name, cm_bytes, clen);
		if (h == 1)
			put("fuzz_record", name, cm_bytes, clen);

		struct td_block *blk;
		fz_check(td_block_decode(&blk, blk_bytes, blen, FZ_CHAIN, false, err, sizeof(err)) == 0,
			 "block decode");
		td_header_encode(&b, &blk->hdr);
		snprintf(name, sizeof(name), "header-%llu", (unsigned long long)h);
		put_buf("fuzz_block", name, &b);
		for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
			snprintf(name, sizeof(name), "record-%llu-%u", (unsigned long long)h, i);
			put("fuzz_record", name, blk->records[i]->bytes, blk->records[i]->len);
		}

		/* Messages about this block. */
		uint8_t sig[TD_SIG_LEN];
		td_proposal_sign(sig, FZ_CHAIN, h, 0, -1, blk->hash, w->sk);
		td_msg_proposal(&b, blk, 0, -1, sig);
		snprintf(name, sizeof(name), "proposal-%llu", (unsigned long long)h);
		put_buf("fuzz_msg", name, &b);
		if (h == height) {
			td_msg_proposal(&b, blk, 2, 1, sig);
			put_buf("fuzz_msg", "proposal-valid-round", &b);
			td_vote_sign(sig, FZ_CHAIN, TD_VOTE_PREVOTE, h, 0, blk->hash, w->sk);
			td_msg_vote(&b, TD_VOTE_PREVOTE, h, 0, blk->hash, 0, sig);
			put_buf("fuzz_msg", "prevote", &b);
			td_vote_sign(sig, FZ_CHAIN, TD_VOTE_PRECOMMIT, h, 1, NULL, w->sk);
			td_msg_vote(&b, TD_VOTE_PRECOMMIT, h, 1, NULL, 0, sig);
			put_buf("fuzz_msg", "precommit-nil", &b);
			td_msg_status(&b, h, blk->hash);
			put_buf("fuzz_msg", "status", &b);
			uint8_t(*ids)[TD_HASH_LEN] = calloc(blk->hdr.n_records, TD_HASH_LEN);
			for (uint32_t i = 0; i < blk->hdr.n_records; i++)
				memcpy(ids[i], blk->records[i]->id, TD_HASH_LEN);
			td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])ids, blk->hdr.n_records);
			put_buf("fuzz_msg", "announce", &b);
			td_msg_ids(&b, TD_MSG_FETCH, (const uint8_t(*)[TD_HASH_LEN])ids, 1);
			put_buf("fuzz_msg", "fetch", &b);
			free(ids);
			td_msg_items_begin(&b, TD_MSG_RECORDS, blk->hdr.n_records);
			for (uint32_t i = 0; i < blk->hdr.n_records; i++)
				td_enc_bin(&b, blk->records[i]->bytes, blk->records[i]->len);
			put_buf("fuzz_msg", "records", &b);
			td_msg_sync_req(&b, 1, TD_SYNC_BATCH);
			put_buf("fuzz_msg", "sync-req", &b);
			td_msg_items_begin(&b, TD_MSG_SYNC_BLOCKS, 1);
			td_enc_array(&b, 2);
			td_enc_bin(&b, blk_bytes, blen);
			td_enc_bin(&b, cm_bytes, clen);
			put_buf("fuzz_msg", "sync-blocks", &b);
			/* Evidence: the world's validator voted for the block and for nil in one round. */
			struct td_evidence ev = {
				.kind = TD_EVIDENCE_VOTES, .height = h, .round = 0, .vote_type = TD_VOTE_PREVOTE
			};
			memcpy(ev.pk, w->g.v[0].pk, TD_PUBKEY_LEN);
			ev.a.valid_round = ev.b.valid_round = -1;
			memcpy(ev.a.value, blk->hash, TD_HASH_LEN);
			td_vote_sign(ev.a.sig, FZ_CHAIN, TD_VOTE_PREVOTE, h, 0, blk->hash, w->sk);
			ev.b.nil = true;
			td_vote_sign(ev.b.sig, FZ_CHAIN, TD_VOTE_PREVOTE, h, 0, NULL, w->sk);
			td_evidence_seal(&ev);
			struct td_buf eb;
			td_buf_init(&eb);
			td_evidence_encode(&eb, &ev);
			td_msg_items_begin(&b, TD_MSG_EVIDENCE, 1);
			td_enc_bin(&b, (const uint8_t *)eb.sb.data, eb.sb.size);
			put_buf("fuzz_msg", "evidence", &b);
			td_buf_free(&eb);
			/* A proposal of a block that carries it. */
			struct td_evidence *own = calloc(1, sizeof(*own));
			*own = ev;
			td_block_set_evidence(blk, own, 1);
			td_proposal_sign(sig, FZ_CHAIN, h, 0, -1, blk->hash, w->sk);
			td_msg_proposal(&b, blk, 0, -1, sig);
			put_buf("fuzz_msg", "proposal-evidence", &b);
		}
		td_block_free(blk);
		free(blk_bytes);
		free(cm_bytes);
	}
}

static void gen_release(void)
{
	static const struct {
		const char *file;
		uint8_t opt;
	} seeds[] = {
		{ "tender-jeju.json", 0 },        { "tender-kisa.json", 0 },         { "tender-gangwon.json", 0 },
		{ "tender-sejong.json", 0 },      { "tender-private.json", 0 },      { "amend-jeju.json", 1 | 4 | 8 },
		{ "award-jeju.json", 3 | 4 | 8 }, { "tender-jeju.json", 2 | 4 | 8 },
	};
	char name[64];
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char *s = sample_text(seeds[i].file);
		snprintf(name, sizeof(name), "%zu-%s", i, seeds[i].file);
		put_opt("fuzz_release", name, seeds[i].opt, s);
		put_str("fuzz_record", seeds[i].file, s);
		free(s);
	}
	/* A tender's life in one input: tender, amendment linked to the committed tender, award. */
	struct fz_world *w = fz_world();
	json_t *seq = json_array();
	json_array_append_new(seq, fz_sample("tender-jeju.json"));
	json_t *am = fz_sample("amend-jeju.json");
	json_object_set_new(json_array_get(json_object_get(json_object_get(am, "tender"), "amendments"), 0),
			    "amendsReleaseID", json_string(w->jeju_tender_id));
	json_array_append_new(seq, am);
	json_array_append_new(seq, json_object());
	json_array_append_new(seq, fz_sample("award-jeju.json"));
	char *s = td_json_dump(seq, JSON_COMPACT);
	put_opt("fuzz_release", "lifecycle", 0 | 4 | 8, s);
	free(s);
	json_decref(seq);
}

static void gen_rpc(void)
{
	static const char *const lines[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n",
		"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tender.get\",\"params\":{\"ocid\":\"ocds-kr2020-jeju-0001\"}}\r\n",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notify\",\"params\":[1,2.50,\"x\"]}\n",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"},{\"jsonrpc\":\"2.0\",\"method\":\"x\"},"
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"error\"}]\n",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"defer\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\","
		"\"params\":{\"n\":12345678901234567890}}\n\n   \n",
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tender.watch\",\"params\":{}}\n",
		"[]\n[1]\n{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}\n{\"id\":{},\"method\":1}\n{bad json\n",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\",\"params\":3}\n[{\"jsonrpc\":\"2.0\",\"id\":3,"
		"\"method\":\"tender.watch\"}]\n",
	};
	char name[32];
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(name, sizeof(name), "whole-%zu", i);
		put_opt("fuzz_rpc", name, 0, lines[i]);
		snprintf(name, sizeof(name), "chunked-%zu", i);
		put_opt("fuzz_rpc", name, (uint8_t)(0x80 | (i * 5 % 16)), lines[i]);
	}
}

static void gen_list(struct fz_world *w)
{
	static const struct {
		const char *name;
		uint8_t limit, mask;
		const char *text;
	} seeds[] = {
		{ "all", 5, 0, "" },
		{ "page1", 3, 0, "" },
		{ "status", 5, 1, "active" },
		{ "filters", 5, 1 | 2 | 4 | 64, "active\nservices\nopen" },
		{ "dates", 4, 8 | 16, "\n\n\n2020-03-01\n2020-12-31T23:59:59+09:00" },
		{ "since-only", 4, 8, "\n\n\n2020-03-09T09:00:00+09:00" },
		{ "stranger", 5, 128, "" },
		{ "bad-cursor", 5, 32, "\n\n\n\n\nzz" },
	};
	char cursor[512];
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t n = strlen(seeds[i].text);
		uint8_t *buf = malloc(n + 2);
		buf[0] = seeds[i].limit;
		buf[1] = seeds[i].mask;
		memcpy(buf + 2, seeds[i].text, n);
		put("fuzz_list", seeds[i].name, buf, n + 2);
		free(buf);
	}
	/* Real cursors: the next_cursor of the first page of a listing, with and without dates. */
	static const struct chain_filter dated = { .since = "2020-01-01T00:00:00Z" };
	const struct chain_filter *filters[] = { NULL, &dated };
	for (int k = 0; k < 2; k++) {
		json_t *res;
		fz_check(chain_list_json(w->c, filters[k], 1, NULL, &res) == 0, "list");
		const char *nc = json_string_value(json_object_get(res, "next_cursor"));
		fz_check(nc != NULL, "no next_cursor");
		int n = snprintf(cursor + 2, sizeof(cursor) - 2, "\n\n\n%s\n\n%s", k ? "2020-01-01T00:00:00Z" : "", nc);
		cursor[0] = 3;
		cursor[1] = (uint8_t)(32 | (k ? 8 : 0));
		put("fuzz_list", k ? "cursor-dated" : "cursor", cursor, (size_t)n + 2);
		json_decref(res);
	}
}

static void gen_files(struct fz_world *w)
{
	char path[PATH_MAX], err[TD_ERRMSG_MAX], *text;
	size_t len;
	struct config cfg;

	/* config.ini as config_write writes it, alone and with overrides. */
	config_defaults(&cfg, "/var/lib/tenderd");
	snprintf(cfg.name, sizeof(cfg.name), "Jeju Special Self-Governing Province");
	snprintf(cfg.p2p_peers, sizeof(cfg.p2p_peers), "127.0.0.1:26657,127.0.0.1:26658");
	snprintf(path, sizeof(path), "%s/gen-config.ini", fz_tmpdir());
	unlink(path);
	fz_check(config_write(&cfg, path, err, sizeof(err)) == 0, "config_write");
	fz_check(config_read_file(path, 1 << 20, &text, &len, err, sizeof(err)) == 0, "read config");
	put("fuzz_config", "written", text, len);
	size_t n = len + 512;
	char *with = malloc(n);
	int k = snprintf(with, n,
			 "%.*s\n--set\nlog.level=debug\nconsensus.timeout_vote_ms=2500\np2p.listen=0.0.0.0:26656\n"
			 "rpc.socket=sock/t.sock\nmempool.max_bytes=1048576\nnode.name=Sejong\nbogus.key=1\n",
			 (int)len, text);
	put("fuzz_config", "written-set", with, (size_t)k);
	free(with);
	free(text);
	put_str("fuzz_config", "minimal", "[node]\nname = Jeju\n");
	put_str("fuzz_config", "sections",
		"; comment\n[node]\nname = Jeju\n[log]\nlevel = info\nformat = json\nfile = tenderd.log\n"
		"[mempool]\nmax_records = 100\n[consensus]\nblock_delay_ms = 0\ntimeout_max_ms = 60000\n"
		"[p2p]\nlisten = 127.0.0.1:1\npeers =\n[store]\npath = data\n");

	/* Governance records: a proposal of each kind of change and an approval, signed by the world's validator. */
	{
		struct td_gov gp[3] = { { .kind = TD_KIND_GOV_PROPOSAL, .action = TD_GOV_ADD, .role = TD_ROLE_MEMBER },
					{ .kind = TD_KIND_GOV_PROPOSAL, .action = TD_GOV_REMOVE },
					{ .kind = TD_KIND_GOV_PROPOSAL, .action = TD_GOV_REPLACE_KEY } };
		static const char *names[3] = { "gov-add", "gov-remove", "gov-replace-key" };
		char ocid[TD_OCID_MAX + 1];
		snprintf(ocid, sizeof(ocid), "%s%s", w->g.ocid_prefix, TD_GOV_OCID_SUFFIX);
		snprintf(gp[0].name, sizeof(gp[0].name), "Busan Metropolitan City");
		for (int i = 0; i < 3; i++) {
			struct td_record *rec = NULL;
			memset(gp[i].pub_key, 0x40 + i, TD_PUBKEY_LEN);
			memset(gp[i].new_pub_key, 0x50 + i, TD_PUBKEY_LEN);
			json_t *body =
				td_gov_body(&gp[i], ocid, names[i], "2026-03-01T00:00:00Z", i == 0 ? "joins" : NULL);
			fz_check(td_record_sign(&rec, TD_KIND_GOV_PROPOSAL, body, 1772323200000ull, NULL, FZ_CHAIN,
						w->sk, err, sizeof(err)) == 0,
				 "sign a governance proposal");
			put("fuzz_record", names[i], rec->bytes, rec->len);
			if (i == 0) {
				struct td_gov ga = { .kind = TD_KIND_GOV_APPROVAL };
				struct td_record *ar = NULL;
				memcpy(ga.proposal, rec->id, TD_HASH_LEN);
				json_t *ab = td_gov_body(&ga, ocid, "gov-approval", "2026-03-01T00:00:00Z", NULL);
				fz_check(td_record_sign(&ar, TD_KIND_GOV_APPROVAL, ab, 1772323200000ull, NULL, FZ_CHAIN,
							w->sk, err, sizeof(err)) == 0,
					 "sign a governance approval");
				put("fuzz_record", "gov-approval", ar->bytes, ar->len);
				json_decref(ab);
				td_record_free(ar);
			}
			json_decref(body);
			td_record_free(rec);
		}
	}

	/* genesis.json as td_genesis_json writes it: the world's and one of four validators. */
	json_t *j = td_genesis_json(&w->g);
	char *s = td_json_dump(j, JSON_INDENT(2));
	put_str("fuzz_genesis", "one", s);
	put_str("fuzz_record", "genesis", s);
	free(s);
	json_decref(j);
	struct td_genesis g4 = w->g;
	struct td_validator v[4];
	g4.n = 4;
	g4.v = v;
	for (int i = 0; i < 4; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		snprintf(v[i].name, sizeof(v[i].name), "agency-%d", i);
		memset(v[i].pk, 0x10 + i, TD_PUBKEY_LEN);
	}
	j = td_genesis_json(&g4);
	s = td_json_dump(j, JSON_COMPACT);
	put_str("fuzz_genesis", "four", s);
	free(s);
	json_decref(j);
	/* Two validators of the four, a member and an observer. */
	struct td_validator others[2];
	memset(others, 0, sizeof(others));
	snprintf(others[0].name, sizeof(others[0].name), "member-0");
	memset(others[0].pk, 0x30, TD_PUBKEY_LEN);
	snprintf(others[1].name, sizeof(others[1].name), "observer-0");
	memset(others[1].pk, 0x31, TD_PUBKEY_LEN);
	g4.n = 2;
	g4.n_members = g4.n_observers = 1;
	g4.others = others;
	j = td_genesis_json(&g4);
	s = td_json_dump(j, JSON_COMPACT);
	put_str("fuzz_genesis", "roles", s);
	free(s);
	json_decref(j);

	/* sign_state.json as signstate_save writes it. */
	struct cons_sign_state ss;
	memset(&ss, 0, sizeof(ss));
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/gen-sign-state.json", fz_tmpdir());
		fz_check(signstate_save(path, &ss, err, sizeof(err)) == 0, "signstate_save");
		fz_check(config_read_file(path, 1 << 20, &text, &len, err, sizeof(err)) == 0, "read sign state");
		put("fuzz_signstate", i ? "signed" : "empty", text, len);
		free(text);
		ss.any = true;
		ss.height = 70000;
		ss.round = 3;
		ss.step = 2;
		ss.proposal = (struct cons_signed){ .set = true, .round = 3, .valid_round = 1 };
		memset(ss.proposal.value, 0x40, TD_HASH_LEN);
		ss.prevote = (struct cons_signed){ .set = true, .round = 3, .valid_round = -1 };
		memcpy(ss.prevote.value, ss.proposal.value, TD_HASH_LEN);
		ss.precommit = (struct cons_signed){ .set = true, .round = 3, .nil = true, .valid_round = -1 };
		ss.locked = ss.prevote;
	}
}

/* ---- fuzz_p2p: programs of FZ_P2P_* operations (world.h) ---- */

#define P2P_PROG_MAX 16384

struct p2p_prog {
	uint8_t b[P2P_PROG_MAX];
	size_t n;
};

static void pp_bytes(struct p2p_prog *pr, const void *data, size_t len)
{
	fz_check(pr->n + len <= sizeof(pr->b), "a fuzz_p2p seed is too long");
	if (len > 0)
		memcpy(pr->b + pr->n, data, len);
	pr->n += len;
}

static void pp_op(struct p2p_prog *pr, enum fz_p2p_op op, uint8_t arg)
{
	uint8_t b[2] = { (uint8_t)op, arg };
	pp_bytes(pr, b, 2);
}

/* HS on slot as validator who (1 or 2) with corruption bad (0: none). */
static void pp_hs(struct p2p_prog *pr, uint8_t slot, int who, uint8_t bad)
{
	pp_op(pr, FZ_P2P_HS, (uint8_t)(slot | (who - 1) << 2 | bad << 3));
}

static void pp_frame(struct p2p_prog *pr, uint8_t slot, uint8_t type, uint8_t flags, const void *pl, size_t len)
{
	uint8_t b[5] = { FZ_P2P_FRAME, (uint8_t)(slot | type << 2), flags, (uint8_t)(len >> 8), (uint8_t)len };
	pp_bytes(pr, b, 5);
	pp_bytes(pr, pl, len);
}

static void pp_send(struct p2p_prog *pr, enum fz_p2p_op op, uint8_t arg, const void *pl, size_t len)
{
	uint8_t b[4] = { (uint8_t)op, arg, (uint8_t)(len >> 8), (uint8_t)len };
	pp_bytes(pr, b, 4);
	pp_bytes(pr, pl, len);
}

/* A connection on slot through a valid handshake as validator who (outbound: the node dials). */
static void pp_session(struct p2p_prog *pr, uint8_t slot, bool outbound, int who)
{
	pp_op(pr, FZ_P2P_OPEN, (uint8_t)(slot | (outbound ? 4 : 0)));
	pp_hs(pr, slot, who, 0);
	if (!outbound)
		pp_hs(pr, slot, who, 0);
}

static void pp_put(struct p2p_prog *pr, const char *name)
{
	put("fuzz_p2p", name, pr->b, pr->n);
	pr->n = 0;
}

static void gen_p2p(void)
{
	struct p2p_prog pr = { .n = 0 };
	struct td_buf status, sync, vote, announce;
	uint8_t hash[TD_HASH_LEN], sig[TD_SIG_LEN], ids[2][TD_HASH_LEN];
	char name[64];
	uint8_t cfg;

	memset(hash, 0x31, sizeof(hash));
	memset(sig, 0x52, sizeof(sig));
	memset(ids, 0x63, sizeof(ids));
	td_buf_init(&status);
	td_buf_init(&sync);
	td_buf_init(&vote);
	td_buf_init(&announce);
	td_msg_status(&status, 42, hash);
	td_msg_sync_req(&sync, 1, TD_SYNC_BATCH);
	td_msg_vote(&vote, TD_VOTE_PREVOTE, 42, 0, hash, 1, sig);
	td_msg_ids(&announce, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])ids, 2);
#define PP_MSG(b) (b).sb.data, (b).sb.size

	/* Whole sessions, each role, with messages both ways. */
	cfg = 0;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, false, 1);
	pp_frame(&pr, 0, 0, 0, PP_MSG(status));
	pp_frame(&pr, 0, 1, 0, NULL, 0);
	pp_frame(&pr, 0, 2, 0, NULL, 0);
	pp_frame(&pr, 0, 0, 0, PP_MSG(vote));
	pp_send(&pr, FZ_P2P_SEND, 0, PP_MSG(announce));
	pp_send(&pr, FZ_P2P_BCAST, 0, PP_MSG(status));
	pp_op(&pr, FZ_P2P_DISC, 0);
	pp_put(&pr, "listen-session");
	cfg = FZ_P2P_CFG_GREET | FZ_P2P_CFG_ECHO;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, true, 2);
	pp_frame(&pr, 0, 0, 0, PP_MSG(status));
	pp_frame(&pr, 0, 1, 0, NULL, 0);
	pp_frame(&pr, 0, 0, 0, PP_MSG(sync));
	pp_frame(&pr, 0, 0, 0, PP_MSG(announce));
	pp_op(&pr, FZ_P2P_CLOSE, 0);
	pp_put(&pr, "dial-session-greet-echo");
	/* Both roles at once, duplicates of one validator, a broadcast to all. */
	cfg = FZ_P2P_CFG_GREET;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, false, 1);
	pp_session(&pr, 1, true, 1);
	pp_session(&pr, 2, false, 1);
	pp_session(&pr, 3, true, 2);
	for (uint8_t i = 0; i < 4; i++)
		pp_frame(&pr, i, 0, 0, PP_MSG(vote));
	pp_send(&pr, FZ_P2P_BCAST, 4 | 3, PP_MSG(announce));
	pp_put(&pr, "duplicates");
	/* Byte by byte, and in pieces of 7. */
	for (uint8_t chunk = 1; chunk <= 7; chunk += 6) {
		cfg = 0;
		pp_bytes(&pr, &cfg, 1);
		pp_op(&pr, FZ_P2P_CHUNK, chunk);
		pp_session(&pr, 0, chunk == 7, 1);
		pp_frame(&pr, 0, 0, 0, PP_MSG(status));
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		snprintf(name, sizeof(name), "chunked-%u", (unsigned)chunk);
		pp_put(&pr, name);
	}

	/* Every corruption of every handshake step (fuzz_p2p.c: enum hello_bad, reply_bad, finish_bad). */
	for (uint8_t bad = 1; bad < 13; bad++) {
		cfg = 0;
		pp_bytes(&pr, &cfg, 1);
		if (bad == 11) /* HB_REFLECT needs a hello of the node */
			pp_op(&pr, FZ_P2P_OPEN, 1 | 4);
		if (bad == 10) /* HB_REPLAY needs a hello before */
			pp_session(&pr, 2, false, 2);
		pp_op(&pr, FZ_P2P_OPEN, 0);
		pp_hs(&pr, 0, 1, bad);
		pp_hs(&pr, 0, 1, 0);
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		snprintf(name, sizeof(name), "hello-bad-%u", (unsigned)bad);
		pp_put(&pr, name);
	}
	for (uint8_t bad = 1; bad < 12; bad++) {
		cfg = 0;
		pp_bytes(&pr, &cfg, 1);
		pp_op(&pr, FZ_P2P_OPEN, 4);
		pp_hs(&pr, 0, 2, bad);
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		snprintf(name, sizeof(name), "reply-bad-%u", (unsigned)bad);
		pp_put(&pr, name);
	}
	for (uint8_t bad = 1; bad < 6; bad++) {
		cfg = 0;
		pp_bytes(&pr, &cfg, 1);
		pp_op(&pr, FZ_P2P_OPEN, 0);
		pp_hs(&pr, 0, 2, 0);
		pp_hs(&pr, 0, 2, bad);
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		snprintf(name, sizeof(name), "finish-bad-%u", (unsigned)bad);
		pp_put(&pr, name);
	}
	cfg = FZ_P2P_CFG_REFUSE_2;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, false, 2);
	pp_session(&pr, 1, true, 2);
	pp_session(&pr, 2, false, 1);
	pp_frame(&pr, 2, 0, 0, PP_MSG(status));
	pp_put(&pr, "refuse-2");

	/* Every frame flag on a session that stands. */
	static const struct {
		const char *name;
		uint8_t type, flags;
	} frames[] = {
		{ "push", 0, 1 },
		{ "rekey", 0, 2 },
		{ "final", 1, 3 },
		{ "flip", 0, FZ_P2P_F_FLIP },
		{ "withhold", 0, FZ_P2P_F_WITHHOLD },
		{ "replay", 0, FZ_P2P_F_REPLAY },
		{ "length-less", 0, FZ_P2P_F_LIE },
		{ "length-more", 0, FZ_P2P_F_LIE | FZ_P2P_F_MORE },
		{ "unknown-type", 3, 0 },
		{ "no-type", FZ_P2P_TYPE_NONE, 0 },
	};
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		cfg = 0;
		pp_bytes(&pr, &cfg, 1);
		pp_session(&pr, 0, i % 2 == 1, 1);
		pp_frame(&pr, 0, 0, 0, PP_MSG(status));
		pp_frame(&pr, 0, frames[i].type, frames[i].flags, PP_MSG(vote));
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		snprintf(name, sizeof(name), "frame-%s", frames[i].name);
		pp_put(&pr, name);
	}
	cfg = 0;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, false, 1);
	pp_frame(&pr, 0, FZ_P2P_TYPE_NONE, 0, NULL, 0);
	pp_put(&pr, "frame-empty");

	/* Frame sizes around frame_max and past the read buffer kept (64 KiB). */
	static const struct {
		const char *name;
		uint8_t cfg, flags;
		uint16_t len;
	} sizes[] = {
		{ "max64-at", 1, 0, 64 },
		{ "max64-over", 1, 0, 65 },
		{ "max1024-over", 2, 0, 1025 },
		{ "max70000-big", 3, FZ_P2P_F_FILL, 4096 },
		{ "max70000-over", 3, FZ_P2P_F_FILL, 4400 },
		{ "default-big", 0, FZ_P2P_F_FILL, 16384 },
	};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t fill[2048];
		memset(fill, 0xa5, sizeof(fill));
		pp_bytes(&pr, &sizes[i].cfg, 1);
		pp_session(&pr, 0, i % 2 == 0, 2);
		size_t n = (sizes[i].flags & FZ_P2P_F_FILL) ? 64 : sizes[i].len;
		uint8_t b[5] = { FZ_P2P_FRAME, 0, sizes[i].flags, (uint8_t)(sizes[i].len >> 8), (uint8_t)sizes[i].len };
		pp_bytes(&pr, b, 5);
		pp_bytes(&pr, fill, n);
		pp_frame(&pr, 0, 1, 0, NULL, 0);
		pp_send(&pr, FZ_P2P_SEND, 0, fill, n);
		snprintf(name, sizeof(name), "size-%s", sizes[i].name);
		pp_put(&pr, name);
	}

	/* on_message that drops a peer whose message does not decode, and one that echoes. */
	for (int k = 0; k < 2; k++) {
		cfg = k ? FZ_P2P_CFG_ECHO : FZ_P2P_CFG_STRICT;
		pp_bytes(&pr, &cfg, 1);
		pp_session(&pr, 0, false, 1);
		pp_session(&pr, 1, true, 2);
		pp_frame(&pr, 1, 0, 0, PP_MSG(status));
		pp_frame(&pr, 0, 0, 0, "\x91\x00", 2);
		pp_frame(&pr, 1, 0, 0, PP_MSG(vote));
		pp_put(&pr, k ? "echo" : "strict");
	}

	/* A peer that does not read fast enough (small buffers and queue), and callbacks that re-enter. */
	{
		uint8_t big[4000];
		memset(big, 0x5c, sizeof(big));
		cfg = FZ_P2P_CFG_SMALL;
		pp_bytes(&pr, &cfg, 1);
		pp_session(&pr, 0, false, 1);
		pp_session(&pr, 1, true, 2);
		pp_send(&pr, FZ_P2P_SEND, 1 | 1 << 3, big, sizeof(big));
		pp_send(&pr, FZ_P2P_SEND, 0 | 7 << 3, big, sizeof(big));
		pp_send(&pr, FZ_P2P_BCAST, 7 << 3, big, sizeof(big));
		pp_frame(&pr, 1, 1, 0, NULL, 0);
		pp_put(&pr, "small-queue");
	}
	cfg = FZ_P2P_CFG_REENTER | FZ_P2P_CFG_ECHO;
	pp_bytes(&pr, &cfg, 1);
	pp_session(&pr, 0, false, 1);
	pp_session(&pr, 1, true, 2);
	pp_session(&pr, 2, true, 1);
	pp_op(&pr, FZ_P2P_DISC, 1);
	pp_frame(&pr, 0, 0, 0, PP_MSG(status));
	pp_frame(&pr, 0, 0, 0, "\xc1\x00", 2);
	pp_frame(&pr, 0, 1, 0, NULL, 0);
	pp_put(&pr, "reenter-stop");

	/* Raw bytes in each phase. */
	cfg = 0;
	pp_bytes(&pr, &cfg, 1);
	pp_op(&pr, FZ_P2P_OPEN, 0);
	pp_op(&pr, FZ_P2P_RAW, 0);
	pp_bytes(&pr, "\x12GET / HTTP/1.1\r\n\r\n", 19);
	pp_op(&pr, FZ_P2P_OPEN, 1 | 4);
	pp_hs(&pr, 1, 1, 0);
	pp_op(&pr, FZ_P2P_RAW, 1);
	pp_bytes(&pr, "\x04\x00\x00\x00\x12", 5);
	pp_op(&pr, FZ_P2P_RAW, 1);
	pp_bytes(&pr, "\x04\xff\xff\xff\xff", 5);
	pp_put(&pr, "raw");

	td_buf_free(&status);
	td_buf_free(&sync);
	td_buf_free(&vote);
	td_buf_free(&announce);
#undef PP_MSG
}

/* The proofs of the world's tenders (chain_proof_json), as tenderctl proof writes them. */
static void gen_proof(struct fz_world *w)
{
	static const char *const ocids[] = { "ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001" };
	for (size_t i = 0; i < sizeof(ocids) / sizeof(ocids[0]); i++) {
		json_t *proof = NULL;
		fz_check(chain_proof_json(w->c, ocids[i], &proof) == 0, "chain_proof_json");
		char *text = td_json_dump(proof, JSON_INDENT(1));
		put("fuzz_proof", ocids[i], text, strlen(text));
		free(text);
		json_decref(proof);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-corpus-gen tests/fuzz/corpus\n");
		return 3;
	}
	root = argv[1];
	mkdir(root, 0755);
	struct fz_world *w = fz_world();
	gen_chain(w);
	gen_release();
	gen_rpc();
	gen_list(w);
	gen_files(w);
	gen_p2p();
	gen_proof(w);
	return 0;
}
