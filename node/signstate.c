/*
 * Sign state file (see signstate.h): a small JSON document, so an operator
 * can read what the validator signed last.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "signstate.h"
#include "tenderd/json.h"

/* The longest document: four kinds of ~150 bytes and numbers of 20 digits. */
#define SIGN_STATE_TEXT_MAX 1024

/* Appends s to out[*n..cap) as an object (set, round, nil, value, valid_round + 1); false if it does not fit. */
static bool signed_text(char *out, size_t cap, size_t *n, const struct cons_signed *s)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, s->value, TD_HASH_LEN);
	int k = snprintf(out + *n, cap - *n,
			 "{\"set\":%s,\"round\":%u,\"nil\":%s,\"value\":\"%s\",\"valid_round\":%llu}",
			 s->set ? "true" : "false", s->round, s->nil ? "true" : "false", hex,
			 (unsigned long long)(uint64_t)((int64_t)s->valid_round + 1));
	if (k < 0 || (size_t)k >= cap - *n)
		return false;
	*n += (size_t)k;
	return true;
}

/*
 * The document signstate_save() writes, compact JSON: byte for byte what
 * td_json_dump(JSON_COMPACT) wrote for the same tree built with json_pack()
 * (tests/test_signstate.c checks), without building a tree: a validator
 * saves it before every message it signs. Returns its length, or 0 if it
 * does not fit in cap.
 */
static size_t sign_state_text(char *out, size_t cap, const struct cons_sign_state *ss)
{
	const struct cons_signed *kinds[] = { &ss->proposal, &ss->prevote, &ss->precommit, &ss->locked };
	static const char *const names[] = { "proposal", "prevote", "precommit", "locked" };
	int k = snprintf(out, cap, "{\"any\":%s,\"height\":%llu,\"round\":%u,\"step\":%llu", ss->any ? "true" : "false",
			 (unsigned long long)ss->height, ss->round, (unsigned long long)(uint64_t)ss->step);
	size_t n;
	if (k < 0 || (size_t)k >= cap)
		return 0;
	n = (size_t)k;
	for (size_t i = 0; i < 4; i++) {
		k = snprintf(out + n, cap - n, ",\"%s\":", names[i]);
		if (k < 0 || (size_t)k >= cap - n)
			return 0;
		n += (size_t)k;
		if (!signed_text(out, cap, &n, kinds[i]))
			return 0;
	}
	if (n + 2 > cap)
		return 0;
	out[n++] = '}';
	out[n] = '\0';
	return n;
}

static bool signed_parse(const json_t *o, struct cons_signed *s)
{
	const json_t *set = json_object_get(o, "set"), *nil = json_object_get(o, "nil"),
		     *value = json_object_get(o, "value");
	uint64_t round, vr;
	if (!json_is_boolean(set) || !json_is_boolean(nil) || !td_json_is_string(value) ||
	    !td_json_number_u64(json_object_get(o, "round"), &round) ||
	    !td_json_number_u64(json_object_get(o, "valid_round"), &vr) || round > UINT32_MAX || vr > INT32_MAX)
		return false;
	s->set = json_is_true(set);
	s->nil = json_is_true(nil);
	s->round = (uint32_t)round;
	s->valid_round = (int32_t)vr - 1;
	return td_unhex(s->value, TD_HASH_LEN, json_string_value(value), json_string_length(value));
}

int signstate_load(const char *path, struct cons_sign_state *ss, char *err, size_t errlen)
{
	char *text;
	size_t len;
	uint64_t height, round, step;
	json_t *doc;
	int rc;

	memset(ss, 0, sizeof(*ss));
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((rc = config_read_file(path, 64 * 1024, &text, &len, err, errlen)))
		return rc;
	doc = td_json_load(text, len, err, errlen);
	free(text);
	if (!doc)
		return TD_EINVAL;
	rc = TD_EINVAL;
	const json_t *any = json_object_get(doc, "any");
	if (!json_is_boolean(any) || !td_json_number_u64(json_object_get(doc, "height"), &height) ||
	    !td_json_number_u64(json_object_get(doc, "round"), &round) ||
	    !td_json_number_u64(json_object_get(doc, "step"), &step) || round > UINT32_MAX || step > 2 ||
	    !signed_parse(json_object_get(doc, "proposal"), &ss->proposal) ||
	    !signed_parse(json_object_get(doc, "prevote"), &ss->prevote) ||
	    !signed_parse(json_object_get(doc, "precommit"), &ss->precommit) ||
	    !signed_parse(json_object_get(doc, "locked"), &ss->locked)) {
		snprintf(err, errlen, "%s: damaged sign state; refusing to start (it guards against double signing)",
			 path);
		memset(ss, 0, sizeof(*ss));
		goto out;
	}
	ss->any = json_is_true(any);
	ss->height = height;
	ss->round = (uint32_t)round;
	ss->step = (enum cons_step)step;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

int signstate_save(const char *path, const struct cons_sign_state *ss, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8], dir[PATH_MAX], text[SIGN_STATE_TEXT_MAX];
	size_t len = sign_state_text(text, sizeof(text), ss);
	int fd = -1, rc = TD_EIO;

	if (len == 0)
		abort(); /* SIGN_STATE_TEXT_MAX holds the longest */

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: fsync directory: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}
