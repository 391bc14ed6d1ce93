/*
 * cpus.h - how many CPUs this process may use (workers = 0).
 */
#ifndef HITCOUNTD_CPUS_H
#define HITCOUNTD_CPUS_H

/*
 * The number of CPUs this process can really run on: the online CPUs,
 * fewer if its CPU affinity mask allows fewer, and fewer again if a
 * cgroup CPU quota on its cgroup or an ancestor (v2 cpu.max, v1
 * cpu.cfs_quota_us) grants less time than that, rounded up.  At least 1.
 * root is the cgroup file system's mount point ("/sys/fs/cgroup"; the
 * tests give another) and cgroup_file the process's cgroup list
 * ("/proc/self/cgroup").
 */
int cpus_usable(const char *root, const char *cgroup_file);

#endif
