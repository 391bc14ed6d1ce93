/*
 * test_cpus.c - unit tests of cpus.c: cpus_usable() against cgroup trees
 * written here (v2 cpu.max and v1 cpu.cfs_quota_us, on the process's
 * cgroup and on an ancestor), compared with what the affinity mask
 * alone allows.
 */
#include "config.h"

#include <sched.h>
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

#include "cpus.h"

static char root[64];
static char cgfile[96];

/* Write text to root/rel, making the directories on the way. */
static void
put(const char *rel, const char *text)
{
	char path[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/test_cpus.XXXXXX");
	if (mkdtemp(root) == NULL)
		return -1;
	snprintf(cgfile, sizeof(cgfile), "%s/self-cgroup", root);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

/* What the affinity mask and the online CPUs allow, without a quota. */
static int
unlimited(void)
{
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	return n > 256 ? 256 : (int)n;
}

static void
test_no_cgroup_file(void **state)
{
	(void)state;
	assert_int_equal(cpus_usable(root, "/nonexistent"), unlimited());
}

static void
test_v2_no_quota(void **state)
{
	(void)state;
	put("self-cgroup", "0::/a/b\n");
	put("a/b/cpu.max", "max 100000\n");
	put("a/cpu.max", "max 100000\n");
	assert_int_equal(cpus_usable(root, cgfile), unlimited());
}

static void
test_v2_quota_on_ancestor(void **state)
{
	(void)state;
	put("self-cgroup", "0::/a/b\n");
	put("a/b/cpu.max", "max 100000\n");
	put("a/cpu.max", "50000 100000\n");     /* half a CPU: one worker */
	assert_int_equal(cpus_usable(root, cgfile), 1);
}

static void
test_v2_quota_in_own_namespace(void **state)
{
	(void)state;
	put("self-cgroup", "0::/\n");           /* docker --cgroupns=private */
	put("cpu.max", "100000 100000\n");
	assert_int_equal(cpus_usable(root, cgfile), 1);
}

static void
test_v2_quota_rounds_up(void **state)
{
	(void)state;
	put("self-cgroup", "0::/c\n");
	put("c/cpu.max", "150000 100000\n");    /* 1.5 CPUs: 2 */
	assert_int_equal(cpus_usable(root, cgfile),
	    unlimited() < 2 ? unlimited() : 2);
}

static void
test_v1_quota(void **state)
{
	(void)state;
	put("self-cgroup", "12:memory:/m\n4:cpu,cpuacct:/d/e\n0::/\n");
	put("cpu/d/e/cpu.cfs_quota_us", "-1\n");
	put("cpu/d/e/cpu.cfs_period_us", "100000\n");
	put("cpu/d/cpu.cfs_quota_us", "100000\n");
	put("cpu/d/cpu.cfs_period_us", "100000\n");
	assert_int_equal(cpus_usable(root, cgfile), 1);
}

static void
test_v1_no_quota(void **state)
{
	(void)state;
	put("self-cgroup", "4:cpu,cpuacct:/d\n");
	put("cpu/d/cpu.cfs_quota_us", "-1\n");
	put("cpu/d/cpu.cfs_period_us", "100000\n");
	assert_int_equal(cpus_usable(root, cgfile), unlimited());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_cgroup_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_no_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_quota_on_ancestor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_quota_in_own_namespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_quota_rounds_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_no_quota, setup, teardown),
	};

	return cmocka_run_group_tests_name("cpus", tests, NULL, NULL);
}
