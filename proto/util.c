/*
 * Small shared helpers: error names, hex, and the one place that aborts on
 * allocation failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/types.h"

const char *td_strerror(int err)
{
	switch ((enum td_err)err) {
	case TD_OK: return "ok";
	case TD_EINVAL: return "invalid input";
	case TD_ENOMEM: return "out of memory";
	case TD_EIO: return "i/o error";
	case TD_ESIG: return "bad signature";
	case TD_ENOTFOUND: return "not found";
	case TD_EEXIST: return "already exists";
	case TD_EFULL: return "full";
	case TD_ECORRUPT: return "corrupt data";
	case TD_EPERM: return "not permitted";
	case TD_ERULE: return "refused by a ledger rule";
	}
	return "unknown error";
}

void td_hex(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool td_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen)
{
	if (hexlen != 2 * len)
		return false;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void oom(size_t n)
{
	fprintf(stderr, "tenderd: out of memory allocating %zu bytes\n", n);
	abort();
}

void *td_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *td_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *td_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *td_xstrndup(const char *s, size_t n)
{
	char *p = td_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
