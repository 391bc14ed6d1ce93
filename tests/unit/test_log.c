/*
 * test_log.c - unit tests of the log line formats on stderr: the plain
 * "hitcountd[PID]: LEVEL: message", and the "<N>" priority prefix without
 * name and pid when stderr is the journal stream named by JOURNAL_STREAM.
 *
 * stderr (fd 2) is pointed at a temporary file for each test; the test
 * then sets JOURNAL_STREAM to that file's device and inode, as systemd
 * does for the stream it connects, or to something else.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "log.h"

static int saved_stderr = -1;
static char path[64];
static char text[4096];

/* fd 2 to a fresh temporary file. */
static int
setup(void **state)
{
	int fd;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	strcpy(path, "/tmp/hitcountd-test-log-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd != -1);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	unlink(path);
	unsetenv("JOURNAL_STREAM");
	log_setformat(LOG_FORMAT_TEXT);
	log_init(1, LOG_INFO);
	return 0;
}

/* JOURNAL_STREAM naming what fd 2 is now. */
static void
set_stream_to_stderr(void)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

/* What was written to fd 2 so far. */
static const char *
written(void)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static void
test_plain_without_journal_stream(void **state)
{
	char want[256];

	(void)state;
	log_init(1, LOG_INFO);
	assert_false(log_is_journal());
	log_warnx("slow %s", "redis");
	snprintf(want, sizeof(want), "hitcountd[%ld]: warning: slow redis\n",
	    (long)getpid());
	assert_string_equal(written(), want);
}

static void
test_journal_prefix_per_level(void **state)
{
	(void)state;
	set_stream_to_stderr();
	log_init(1, LOG_DEBUG);
	assert_true(log_is_journal());
	log_errorx("e");
	log_warnx("w");
	log_info("i");
	log_debug("d");
	errno = ENOENT;
	log_warn("open %s", "x");
	assert_string_equal(written(),
	    "<3>error: e\n"
	    "<4>warning: w\n"
	    "<6>info: i\n"
	    "<7>debug: d\n"
	    "<4>warning: open x: No such file or directory\n");
}

static void
test_journal_level_filter(void **state)
{
	(void)state;
	set_stream_to_stderr();
	log_init(1, LOG_WARNING);
	log_info("not shown");
	log_warnx("shown");
	assert_string_equal(written(), "<4>warning: shown\n");
}

/* A JOURNAL_STREAM of another file: stderr was redirected, plain lines. */
static void
test_other_stream_is_not_the_journal(void **state)
{
	char want[256];
	struct stat st;
	char v[64];

	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", v, 1);
	log_init(1, LOG_INFO);
	assert_false(log_is_journal());
	log_errorx("x");
	snprintf(want, sizeof(want), "hitcountd[%ld]: error: x\n",
	    (long)getpid());
	assert_string_equal(written(), want);
}

static void
test_malformed_journal_stream(void **state)
{
	static const char *const bad[] = {
		"", ":", "1", "1:", ":1", "1:2x", "x1:2", "-1:2", "1:-2",
		"1 :2", "99999999999999999999999:1",
	};
	struct stat st;
	char v[64];
	size_t i;

	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("JOURNAL_STREAM", bad[i], 1);
		log_init(1, LOG_INFO);
		assert_false(log_is_journal());
	}
	/* Trailing text after a matching pair is not accepted either. */
	snprintf(v, sizeof(v), "%llu:%llu:", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	log_init(1, LOG_INFO);
	assert_false(log_is_journal());
}

/* Detection leaves errno alone: callers log errno right after log_init. */
static void
test_init_keeps_errno(void **state)
{
	(void)state;
	setenv("JOURNAL_STREAM", "1:x", 1);
	errno = EAGAIN;
	log_init(1, LOG_INFO);
	assert_int_equal(errno, EAGAIN);
}

/* Structured formats get the prefix too, before the line itself. */
static void
test_journal_structured(void **state)
{
	const char *out;

	(void)state;
	set_stream_to_stderr();
	log_init(1, LOG_INFO);
	log_setformat(LOG_FORMAT_JSON);
	log_warnx("j");
	log_setformat(LOG_FORMAT_KV);
	log_errorx("k");
	out = written();
	assert_true(strncmp(out, "<4>{\"ts\":\"", 10) == 0);
	assert_non_null(strstr(out, "\"level\":\"warning\","));
	assert_non_null(strstr(out, "\"msg\":\"j\"}\n<3>ts="));
	assert_non_null(strstr(out, " level=error pid="));
	assert_non_null(strstr(out, " msg=\"k\"\n"));
}

/* "Warn once, then debug": one warning until the trouble is over. */
static void
test_limit_once(void **state)
{
	struct log_limit l;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(log_limit_level(&l, LOG_WARNING, 5), LOG_WARNING);
	assert_int_equal(log_limit_level(&l, LOG_WARNING, 100000), LOG_DEBUG);
	assert_false(log_limit_pass(&l, 200000));
	assert_int_equal(log_limit_reset(&l), 1);
	assert_int_equal(log_limit_reset(&l), 0);
	assert_true(log_limit_pass(&l, 0));
	assert_false(log_limit_pass(&l, 0));
}

/* Once a second: one passes, those within the period do not. */
static void
test_limit_period(void **state)
{
	struct log_limit l;

	(void)state;
	log_limit_init(&l, 1000);
	assert_false(log_limit_pass(&l, 999));  /* the clock's first second */
	assert_true(log_limit_pass(&l, 5000));
	assert_false(log_limit_pass(&l, 5999));
	assert_int_equal(log_limit_level(&l, LOG_INFO, 5999), LOG_DEBUG);
	assert_true(log_limit_pass(&l, 6000));
	assert_false(log_limit_pass(&l, 6001));
	assert_int_equal(log_limit_reset(&l), 1);
	assert_true(log_limit_pass(&l, 6002));
}

/* log_at() writes at the level it is given, and filters by it. */
static void
test_log_at(void **state)
{
	(void)state;
	set_stream_to_stderr();
	log_init(1, LOG_INFO);
	log_at(LOG_WARNING, "w %d", 1);
	log_at(LOG_DEBUG, "not shown");
	log_at(LOG_INFO, "i");
	assert_string_equal(written(), "<4>warning: w 1\n<6>info: i\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain_without_journal_stream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_prefix_per_level,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_level_filter,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_other_stream_is_not_the_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_journal_stream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_keeps_errno,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_structured,
		    setup, teardown),
		cmocka_unit_test(test_limit_once),
		cmocka_unit_test(test_limit_period),
		cmocka_unit_test_setup_teardown(test_log_at, setup, teardown),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
