/*
 * The daemon's log: one line per event on stderr (or a file), with a UTC
 * timestamp and a level; plain text or JSON lines for log shippers.
 * Never log key material.
 */
#ifndef TENDERD_LOG_H
#define TENDERD_LOG_H

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_parse_level(const char *s);
void log_set_level(enum log_level level);
/* true: JSON lines {"ts","level","msg"}; false: plain text. */
void log_set_json(int json);
int log_enabled(enum log_level level);
/*
 * Sends the log (and anything else written to stderr) to the file at path,
 * appending; remembered for log_reopen(). Returns 0 or -errno.
 */
int log_set_file(const char *path);
/* Opens the log file again (after logrotate moved it); does nothing without one. Returns 0 or -errno. */
int log_reopen(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                                                 \
	do {                                                                                                           \
		if (log_enabled(LOG_DEBUG))                                                                            \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                                               \
	} while (0)

#endif
