/*
 * libFuzzer target for a node's config.ini and its --set overrides (node/config.c:
 * config_load, config_set, config_write).
 *
 * Input: the text of config.ini, then optionally a line "--set" and one SECTION.KEY=VALUE
 * per line after it, split as `tenderd run --set` splits them. The file goes into a
 * temporary home and is loaded; if that works, each override is applied.
 *
 * Checks: a loaded config with its overrides, written out by config_write (which writes the
 * node name and p2p addresses, and defaults for the rest, as for a new home) and loaded again,
 * has the same name and addresses: a value the daemon accepts is one it can write back.
 *
 * Seeds: tests/fuzz/corpus/fuzz_config (fuzz-corpus-gen: a config written by config_write
 * and overrides of every section).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenderd/types.h"
#include "config.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SETS_MAX 64

static char home[PATH_MAX], home2[PATH_MAX], file[PATH_MAX + 16], file2[PATH_MAX + 16];

static void apply_set(struct config *cfg, const char *arg)
{
	char section[32], key[64], err[TD_ERRMSG_MAX];
	const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');

	if (!dot || !eq || dot > eq || dot - arg >= 32 || eq - dot - 1 >= 64)
		return;
	snprintf(section, sizeof(section), "%.*s", (int)(dot - arg), arg);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - dot - 1), dot + 1);
	(void)config_set(cfg, section, key, eq + 1, err, sizeof(err));
}

/* config_write writes the name, the p2p addresses and defaults for the rest (a new home's file). */
static void same(const struct config *a, const struct config *b)
{
	fz_check(strcmp(a->name, b->name) == 0, "name differs after a round trip");
	fz_check(strcmp(a->p2p_listen, b->p2p_listen) == 0, "p2p.listen differs after a round trip");
	fz_check(strcmp(a->p2p_peers, b->p2p_peers) == 0, "p2p.peers differs after a round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg, again;
	char err[TD_ERRMSG_MAX];

	if (!home[0]) {
		snprintf(home, sizeof(home), "%s/home", fz_tmpdir());
		snprintf(home2, sizeof(home2), "%s/home2", fz_tmpdir());
		mkdir(home, 0700);
		mkdir(home2, 0700);
		snprintf(file, sizeof(file), "%s/%s", home, CONFIG_FILE);
		snprintf(file2, sizeof(file2), "%s/%s", home2, CONFIG_FILE);
	}
	if (size > 64 * 1024)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	size_t ini_len = size;
	char *sets = NULL;
	char *mark = strstr(text, "\n--set\n");
	if (mark) {
		ini_len = (size_t)(mark - text) + 1;
		sets = mark + 7;
	}
	fz_write_file(file, text, ini_len);
	if (config_load(&cfg, home, err, sizeof(err)) == 0) {
		int n = 0;
		for (char *line = sets; line && *line && n < SETS_MAX; n++) {
			char *nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			apply_set(&cfg, line);
			line = nl ? nl + 1 : NULL;
		}
		unlink(file2);
		if (config_write(&cfg, file2, err, sizeof(err)) == 0) {
			fz_check(config_load(&again, home2, err, sizeof(err)) == 0, "a written config does not load");
			same(&cfg, &again);
		}
	}
	free(text);
	return 0;
}
