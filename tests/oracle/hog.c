/*
 * hog - touch N MiB under a NUMA memory policy and report where the pages went.
 *
 * Built static (gcc -static) for the oracle initramfs; no libnuma: the policy is set with
 * the raw set_mempolicy(2) / mbind(2) system calls.
 *
 *   hog --name vm1 --size-kib 307200 --policy bind --nodes 0-2 --cpus 2 --hold
 *       [--api set_mempolicy|mbind] [--oom-score-adj N] [--progress FILE]
 *
 *   --policy    default | bind | preferred | preferred-many | interleave
 *   --nodes     nodeset (0-2,4), needed by every policy but default
 *   --cpus      CPU list to pin to (sched_setaffinity) so the task runs on that node
 *   --api       set_mempolicy (task policy, the default) or mbind (policy on the mapping,
 *               the way QEMU's memory-backend applies host-nodes/policy)
 *   --hold      after reporting, stay alive (pause) holding the memory until killed
 *   --progress  a file the hog keeps up to date (through a shared mapping) with the pages it
 *               has touched per node, so a hog the OOM killer takes leaves its placement
 *
 * The mapping is touched one page at a time with memset (a constant byte: zram stores such
 * "same-filled" pages without using memory, so a zram swap device behaves like a disk).
 * Pages are counted per node as they are placed (move_pages(2) status query, 256 pages per
 * call); at the end /proc/self/numa_maps is parsed for the mapping (N<node>=<pages>, scaled by
 * kernelpagesize_kB) - the resident placement - and one JSON line is printed:
 *
 *   {"name":"vm1","pid":..,"policy":"bind","nodes":"0-2","api":"set_mempolicy","cpus":"2",
 *    "requested_bytes":..,"touched_bytes":..,"placed":{"0":bytes,..},"first_touch":{..},
 *    "vm_rss_kb":..,"vm_swap_kb":..,"seconds":..}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_PREFERRED_MANY 5
#define MAX_NODES 64
#define PAGE 4096UL
#define BATCH 256

struct progress {            /* layout of the --progress file */
    char magic[8];           /* "NGHOG1\0\0" */
    uint64_t touched_pages;
    uint64_t pages[MAX_NODES];
};

static void die(const char *what)
{
    fprintf(stderr, "hog: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int parse_list(const char *s, unsigned long *mask)
{
    /* "0-2,4" -> bitmask; returns -1 on syntax error */
    *mask = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b;
        if (end == s || a < 0 || a >= MAX_NODES)
            return -1;
        b = a;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s || b < a || b >= MAX_NODES)
                return -1;
        }
        for (long i = a; i <= b; i++)
            *mask |= 1UL << i;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Resident pages per node of the mapping starting at addr, from /proc/self/numa_maps. */
static void numa_maps_placement(uintptr_t addr, uint64_t *bytes)
{
    FILE *f = fopen("/proc/self/numa_maps", "r");
    char line[4096];
    if (!f)
        die("/proc/self/numa_maps");
    while (fgets(line, sizeof line, f)) {
        uintptr_t start = strtoull(line, NULL, 16);
        if (start != addr)
            continue;
        uint64_t pages[MAX_NODES] = {0};
        unsigned long kb = 4;
        for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
            int node;
            unsigned long n;
            if (sscanf(tok, "N%d=%lu", &node, &n) == 2 && node >= 0 && node < MAX_NODES)
                pages[node] = n;
            else if (sscanf(tok, "kernelpagesize_kB=%lu", &n) == 1)
                kb = n;
        }
        for (int i = 0; i < MAX_NODES; i++)
            bytes[i] = pages[i] * kb * 1024;
    }
    fclose(f);
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static void print_nodes(const char *key, const uint64_t *v, uint64_t scale)
{
    int first = 1;
    printf("\"%s\":{", key);
    for (int i = 0; i < MAX_NODES; i++) {
        if (!v[i])
            continue;
        printf("%s\"%d\":%llu", first ? "" : ",", i, (unsigned long long)(v[i] * scale));
        first = 0;
    }
    printf("}");
}

static void usage(void)
{
    fprintf(stderr, "usage: hog --name NAME --size-kib N [--policy P] [--nodes LIST] "
                    "[--cpus LIST] [--api set_mempolicy|mbind] [--oom-score-adj N] "
                    "[--progress FILE] [--hold]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *name = "hog", *policy = "default", *nodes = "", *cpus = "", *api = "set_mempolicy";
    const char *progress_path = NULL;
    unsigned long size_kib = 0;
    int hold = 0, have_adj = 0;
    long adj = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hold")) { hold = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--size-kib")) size_kib = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--policy")) policy = v;
        else if (!strcmp(a, "--nodes")) nodes = v;
        else if (!strcmp(a, "--cpus")) cpus = v;
        else if (!strcmp(a, "--api")) api = v;
        else if (!strcmp(a, "--oom-score-adj")) { adj = strtol(v, NULL, 10); have_adj = 1; }
        else if (!strcmp(a, "--progress")) progress_path = v;
        else usage();
        i++;
    }
    if (!size_kib)
        usage();

    /* the name the OOM killer prints (comm, 15 characters) */
    prctl(PR_SET_NAME, name, 0, 0, 0);
    if (have_adj) {
        FILE *f = fopen("/proc/self/oom_score_adj", "w");
        if (!f || fprintf(f, "%ld\n", adj) < 0 || fclose(f))
            die("oom_score_adj");
    }
    if (*cpus) {
        unsigned long m;
        cpu_set_t set;
        if (parse_list(cpus, &m))
            usage();
        CPU_ZERO(&set);
        for (int c = 0; c < MAX_NODES; c++)
            if (m & (1UL << c))
                CPU_SET(c, &set);
        if (sched_setaffinity(0, sizeof set, &set))
            die("sched_setaffinity");
        sched_yield(); /* be on the new CPU before the first fault */
    }

    int mode;
    if (!strcmp(policy, "default")) mode = MPOL_DEFAULT;
    else if (!strcmp(policy, "bind")) mode = MPOL_BIND;
    else if (!strcmp(policy, "preferred")) mode = MPOL_PREFERRED;
    else if (!strcmp(policy, "preferred-many")) mode = MPOL_PREFERRED_MANY;
    else if (!strcmp(policy, "interleave")) mode = MPOL_INTERLEAVE;
    else usage();
    unsigned long mask = 0;
    if (mode != MPOL_DEFAULT && parse_list(nodes, &mask))
        usage();
    /* maxnode = 65: the kernel reads bits 0..63 of one unsigned long (get_nodes: --maxnode) */
    unsigned long maxnode = mode == MPOL_DEFAULT ? 0 : 8 * sizeof mask + 1;
    int use_mbind = !strcmp(api, "mbind");

    struct progress *prog = NULL;
    if (progress_path) {
        int fd = open(progress_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, sizeof *prog))
            die(progress_path);
        prog = mmap(NULL, sizeof *prog, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (prog == MAP_FAILED)
            die("mmap progress");
        close(fd);
        memcpy(prog->magic, "NGHOG1\0\0", 8);
    }

    size_t len = size_kib * 1024UL;
    len = (len + PAGE - 1) & ~(PAGE - 1);
    if (!use_mbind && syscall(SYS_set_mempolicy, mode, mode ? &mask : NULL, maxnode))
        die("set_mempolicy");
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    madvise(p, len, MADV_NOHUGEPAGE);
    if (use_mbind && syscall(SYS_mbind, p, len, mode, mode ? &mask : NULL, maxnode, 0))
        die("mbind");

    double t0 = now();
    uint64_t first[MAX_NODES] = {0};
    void *pages[BATCH];
    int status[BATCH];
    size_t npages = len / PAGE, done = 0;
    while (done < npages) {
        size_t n = npages - done < BATCH ? npages - done : BATCH;
        for (size_t i = 0; i < n; i++) {
            unsigned char *pg = p + (done + i) * PAGE;
            memset(pg, 0x5a, PAGE);
            pages[i] = pg;
        }
        /* nodes == NULL: only report where each page is (mm/migrate.c do_pages_stat) */
        if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) == 0) {
            for (size_t i = 0; i < n; i++)
                if (status[i] >= 0 && status[i] < MAX_NODES)
                    first[status[i]]++;
        }
        done += n;
        if (prog) {
            for (int i = 0; i < MAX_NODES; i++)
                prog->pages[i] = first[i];
            prog->touched_pages = done;
        }
    }
    double secs = now() - t0;

    uint64_t placed[MAX_NODES] = {0};
    numa_maps_placement((uintptr_t)p, placed);
    printf("{\"name\":\"%s\",\"pid\":%d,\"policy\":\"%s\",\"nodes\":\"%s\",\"api\":\"%s\","
           "\"cpus\":\"%s\",\"cpu\":%d,\"requested_bytes\":%zu,\"touched_bytes\":%zu,",
           name, getpid(), policy, nodes, api, cpus, sched_getcpu(), len, done * PAGE);
    print_nodes("placed", placed, 1);
    printf(",");
    print_nodes("first_touch", first, PAGE);
    printf(",\"vm_rss_kb\":%ld,\"vm_swap_kb\":%ld,\"seconds\":%.3f}\n",
           status_kb("VmRSS"), status_kb("VmSwap"), secs);
    fflush(stdout);
    if (hold)
        for (;;)
            pause();
    return 0;
}
