/*
 * ISO 8601 date-times (see tenderd/isotime.h): the one parser every caller
 * uses, and the formatter of the ledger's own times. Pure: no clock, no
 * locale, no time zone database; the calendar arithmetic is done here
 * rather than by timegm() so every year 0000..9999 has a value.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tenderd/isotime.h"

/* Reads n decimal digits at s; false if any is not a digit. */
static bool read_digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

static unsigned days_in_month(unsigned year, unsigned month)
{
	static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

bool td_iso_parse(const char *s, size_t len, int64_t *ms)
{
	unsigned year, month, day, hour, min, sec, zh = 0, zm = 0;
	int64_t frac = 0, mins;
	size_t i, nd = 0;
	char sign = 0;

	if (s == NULL || len < 20)
		return false;
	if (!read_digits(s, 4, &year) || s[4] != '-' || !read_digits(s + 5, 2, &month) || s[7] != '-' ||
	    !read_digits(s + 8, 2, &day) || s[10] != 'T' || !read_digits(s + 11, 2, &hour) || s[13] != ':' ||
	    !read_digits(s + 14, 2, &min) || s[16] != ':' || !read_digits(s + 17, 2, &sec))
		return false;
	if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60)
		return false;
	i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			if (nd < 3) {
				frac = frac * 10 + (s[i] - '0');
				nd++;
			}
		if (i == start)
			return false;
		for (; nd < 3; nd++)
			frac *= 10;
	}
	if (i < len && s[i] == 'Z') {
		if (i + 1 != len)
			return false;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		if (len - i != 6 || !read_digits(s + i + 1, 2, &zh) || s[i + 3] != ':' ||
		    !read_digits(s + i + 4, 2, &zm) || zh > 23 || zm > 59)
			return false;
		sign = s[i];
	} else {
		return false;
	}
	if (!ms)
		return true;
	mins = (days_from_civil(year, month, day) * 24 + hour) * 60 + min;
	if (sign)
		mins -= (sign == '+' ? 1 : -1) * (int64_t)(zh * 60 + zm);
	*ms = (mins * 60 + sec) * 1000 + frac;
	return true;
}

bool td_iso_valid(const char *s, size_t len)
{
	return td_iso_parse(s, len, NULL);
}

void td_time_iso(char out[32], uint64_t time_ms)
{
	struct tm tm;
	time_t secs = (time_t)(time_ms / 1000);
	unsigned ms = (unsigned)(time_ms % 1000);

	if ((uint64_t)secs != time_ms / 1000 || gmtime_r(&secs, &tm) == NULL) {
		/* Beyond what the C library can represent: no real clock gets here. */
		memset(&tm, 0, sizeof tm);
		tm.tm_year = 70;
		tm.tm_mday = 1;
		ms = 0;
	}
	int n = snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	if (n < 0)
		out[0] = '\0';
}
