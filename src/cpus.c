/*
 * cpus.c - how many CPUs this process may use, for workers = 0.
 *
 * A container limited to one CPU on a 64-core node sees 64 online CPUs:
 * counting those would start 64 workers and 64 Redis connections that
 * share one CPU's time.  Container runtimes and Kubernetes limit a
 * process in two ways, and both count here: the CPU affinity mask
 * (cpuset, taskset), and a cgroup CPU quota (docker run --cpus, a CPU
 * limit): cpu.max on cgroup v2, cpu.cfs_quota_us and cpu.cfs_period_us on
 * v1, on the process's cgroup or any ancestor, the smallest winning.  A
 * quota of 1.5 CPUs gives 2 workers: rounding down would leave time
 * unused.  Anything unreadable means "no limit" from that source.
 * Common ground: calls only libc; called by conf.c (workers = auto).
 */
#include "config.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpus.h"

#define CPUS_PATH_MAX 512

/* Quota/period as whole CPUs, rounded up; 0 for no limit. */
static long
cpus_ratio(long long quota, long long period)
{
	if (quota <= 0 || period <= 0)
		return 0;
	return (long)((quota + period - 1) / period);
}

/*
 * The smallest quota on dir and its ancestors up to the mount point top:
 * v2 reads cpu.max ("max 100000" or "150000 100000"), v1 reads
 * cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.  0 for no limit.
 */
static long
cpus_quota_walk(const char *top, const char *rel, int v2)
{
	char dir[CPUS_PATH_MAX], path[CPUS_PATH_MAX + 32], word[32];
	long long q, p;
	long best = 0, n;
	FILE *f;
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s%s", top, rel) >= (int)sizeof(dir))
		return 0;
	for (;;) {
		n = 0;
		snprintf(path, sizeof(path), "%s/%s", dir,
		    v2 ? "cpu.max" : "cpu.cfs_quota_us");
		if ((f = fopen(path, "r")) != NULL) {
			if (v2 && fscanf(f, "%31s %lld", word, &p) == 2 &&
			    strcmp(word, "max") != 0)
				n = cpus_ratio(atoll(word), p);
			else if (!v2 && fscanf(f, "%lld", &q) == 1 && q > 0) {
				fclose(f);
				snprintf(path, sizeof(path), "%s/cpu.cfs_period_us",
				    dir);
				f = fopen(path, "r");
				if (f != NULL && fscanf(f, "%lld", &p) == 1)
					n = cpus_ratio(q, p);
			}
			if (f != NULL)
				fclose(f);
		}
		if (n > 0 && (best == 0 || n < best))
			best = n;
		if (strlen(dir) <= strlen(top))
			return best;
		slash = strrchr(dir, '/');
		if (slash == NULL)
			return best;
		*slash = '\0';
	}
}

/* The cgroup quota of this process, from its cgroup list; 0 for none. */
static long
cpus_quota(const char *root, const char *cgroup_file)
{
	char line[CPUS_PATH_MAX], top[CPUS_PATH_MAX], *ctl, *rel, *tok;
	long best = 0, n;
	FILE *f = fopen(cgroup_file, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		/* "ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
		ctl = strchr(line, ':');
		rel = ctl != NULL ? strchr(ctl + 1, ':') : NULL;
		if (rel == NULL)
			continue;
		*rel++ = '\0';
		ctl++;
		n = 0;
		if (*ctl == '\0') {
			n = cpus_quota_walk(root, strcmp(rel, "/") ? rel : "",
			    1);
		} else {
			for (tok = strtok(ctl, ","); tok; tok = strtok(NULL, ","))
				if (strcmp(tok, "cpu") == 0)
					break;
			if (tok == NULL)
				continue;
			/* Mounted as cpu,cpuacct (cpu is a link to it). */
			snprintf(top, sizeof(top), "%s/cpu", root);
			n = cpus_quota_walk(top, strcmp(rel, "/") ? rel : "",
			    0);
		}
		if (n > 0 && (best == 0 || n < best))
			best = n;
	}
	fclose(f);
	return best;
}

int
cpus_usable(const char *root, const char *cgroup_file)
{
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN), q;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	q = cpus_quota(root, cgroup_file);
	if (q > 0 && q < n)
		n = q;
	return n < 1 ? 1 : (int)(n > 256 ? 256 : n);
}
