/*
 * ISO 8601 date-times as the ledger takes them: one parser and one formatter.
 *
 * The language (the only one accepted anywhere: release dates, genesis time,
 * list filters): YYYY-MM-DDTHH:MM:SS, then optionally "." and one or more
 * digits, then "Z" or a zone offset +hh:mm or -hh:mm (hh 00..23, mm
 * 00..59). Years 0000..9999 of the proleptic Gregorian calendar, days checked
 * against the month (leap years included), hours 00..23, minutes 00..59,
 * seconds 00..60 (second 60 is the first second of the next minute). Nothing
 * else: no lowercase "t" or "z", no bare date, no basic format, no bytes
 * after the zone.
 */
#ifndef TENDERD_ISOTIME_H
#define TENDERD_ISOTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses s[0..len) (no NUL needed). True if it is a date-time of the
 * language above; then, unless ms is NULL, *ms is the instant in
 * milliseconds since 1970-01-01T00:00:00Z with the zone offset applied
 * (negative before 1970), fraction digits past the millisecond dropped and
 * fewer than three read as if padded with zeros (".5" is 500 ms). False,
 * with *ms untouched, for anything else.
 */
bool td_iso_parse(const char *s, size_t len, int64_t *ms);

/* True if s[0..len) is a date-time of the language above (td_iso_parse without the value). */
bool td_iso_valid(const char *s, size_t len);

/* Formats ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (32 bytes). */
void td_time_iso(char out[32], uint64_t time_ms);

#endif
