#!/usr/bin/env bash
# capture_sysfs.sh - capture real NUMA sysfs/procfs trees from a real Linux
# kernel booted under qemu (TCG software emulation) with emulated NUMA nodes.
#
# For every host configuration (one cfg_<name> function each) this boots a
# Debian kernel with a tiny busybox initramfs, lets /init copy the NUMA-related
# sysfs/procfs files plus `numactl -H` and the dmesg zonelist lines into a
# staging tree, streams it over the serial console as base64(tar.gz) between
# markers, and unpacks it into tests/fixtures/sys/<name>/ on the host.
#
# Usage:   tests/oracle/capture_sysfs.sh [--no-apt] [--list] [CONFIG...]
#          (no CONFIG = all configurations, in the order of CONFIGS below)
# Env:     KERNEL_ABI=6.1.0-56   pin the kernel ABI (default: newest 6.1.0-N-amd64)
#          BUILD_DIR=...         scratch dir (default: <repo>/.oracle-build)
#          FIXTURE_DIR=...       output dir  (default: <repo>/tests/fixtures/sys)
#          BOOT_TIMEOUT=600      seconds per boot before qemu is killed
#
# Needs root for apt-get (skip with --no-apt if the packages are present).
# The kernel package is only extracted with dpkg -x, never installed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=capture
# shellcheck source=tests/oracle/lib.sh
. "$SCRIPT_DIR/lib.sh"   # REPO_ROOT, BUILD_DIR, QEMU, KERNEL_ABI; fetch_kernel, qa_*, ...
FIXTURE_DIR=${FIXTURE_DIR:-$REPO_ROOT/tests/fixtures/sys}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}

APT_PACKAGES=(qemu-system-x86 busybox-static cpio numactl gcc libc6-dev)
# Kernel modules shipped in the initramfs (dependencies are resolved from
# the modules' own "depends=" modinfo field).
INITRAMFS_MODULES=(kernel/drivers/block/zram/zram.ko)

CONFIGS=(1node 2node 4node 8node memoryless cpuless offline-cpus hugepages swap)

# --------------------------------------------------------------------------
# Host preparation (install_deps, fetch_kernel: lib.sh)
# --------------------------------------------------------------------------

# Small static helper run inside the guest: keeps memory mapped so that the
# captured counters show pages in use.
#   nghelper huge N READYFILE   mmap N x 2 MiB MAP_HUGETLB pages, touch, wait
#   nghelper anon M READYFILE   mmap M MiB anonymous memory, fill, wait
build_helper() {
    local src="$BUILD_DIR/nghelper.c" bin="$BUILD_DIR/nghelper"
    cat >"$src" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s huge|anon COUNT READYFILE\n", argv[0]);
        return 2;
    }
    int huge = strcmp(argv[1], "huge") == 0;
    size_t n = strtoul(argv[2], NULL, 10);
    size_t len = n * (huge ? (2UL << 20) : (1UL << 20));
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (huge)
        flags |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* xorshift fill: not same-filled, so zram really stores the pages */
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < len; i += huge ? 4096 : sizeof(uint64_t)) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        *(uint64_t *)(p + i) = x;
    }
    int fd = open(argv[3], O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
    for (;;)
        pause();
}
EOF
    gcc -static -O2 -Wall -o "$bin" "$src"
}

# The guest's /init. Behaviour is driven by ng.* kernel parameters:
#   ng.offline=3,5        CPUs to take offline before the capture
#   ng.hugehog=0:4,1:2    node:count of 2 MiB hugetlb pages to keep mapped
#   ng.zram=64M           create zram0 of this size and swapon it
#   ng.swapout=32M        push this much anon memory of a helper to swap
write_init() {
    cat >"$1" <<'EOF'
#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/lib64
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /run /capture

say() { echo "ng-init: $*"; }
param() {
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1="*) echo "${w#*=}" ;; esac
    done
}
wait_file() {
    i=0
    while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ] || say "timeout waiting for $1"
}

# ---- configuration-specific actions -------------------------------------
for c in $(param ng.offline | tr ',' ' '); do
    say "offlining cpu$c"
    echo 0 > /sys/devices/system/cpu/cpu$c/online || say "offline cpu$c failed"
done

for nc in $(param ng.hugehog | tr ',' ' '); do
    node=${nc%%:*}; count=${nc#*:}
    say "mapping $count x 2MiB hugetlb pages on node $node"
    numactl --cpunodebind=$node --membind=$node /bin/nghelper huge $count /run/huge$node &
    wait_file /run/huge$node
done

zram=$(param ng.zram)
if [ -n "$zram" ]; then
    say "zram swap of $zram"
    for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m || say "insmod $m failed"; done
    echo "$zram" > /sys/block/zram0/disksize
    mkswap /dev/zram0 >/dev/null
    swapon /dev/zram0 || say "swapon failed"
    out=$(param ng.swapout)
    if [ -n "$out" ]; then
        mb=$(( ${out%M} + 16 ))
        echo +memory > /sys/fs/cgroup/cgroup.subtree_control
        mkdir /sys/fs/cgroup/hog
        sh -c "echo \$\$ > /sys/fs/cgroup/hog/cgroup.procs; exec /bin/nghelper anon $mb /run/anon" &
        wait_file /run/anon
        echo "$out" > /sys/fs/cgroup/hog/memory.reclaim || say "memory.reclaim failed"
    fi
fi
sync; sleep 1

# ---- capture ------------------------------------------------------------
cap() {
    for f in "$@"; do
        [ -f "$f" ] || continue
        mkdir -p "/capture${f%/*}"
        cat "$f" > "/capture$f" 2>/dev/null || rm -f "/capture$f"
    done
}
N=/sys/devices/system/node
cap $N/online $N/possible $N/has_cpu $N/has_memory $N/has_normal_memory
for d in $N/node*; do
    cap $d/cpulist $d/cpumap $d/meminfo $d/distance $d/numastat
    for h in $d/hugepages/hugepages-*; do
        cap $h/nr_hugepages $h/free_hugepages $h/surplus_hugepages
    done
done
C=/sys/devices/system/cpu
cap $C/online $C/offline $C/present $C/possible
cap /proc/meminfo /proc/zoneinfo /proc/sys/kernel/numa_balancing \
    /proc/sys/vm/min_free_kbytes /proc/cmdline /proc/version
numactl -H > /capture/numactl-H.txt 2>&1
dmesg | grep -E 'Fallback order for Node|Built [0-9]+ zonelists' > /capture/fallback.txt

# ---- ship it over the serial console ------------------------------------
echo 1 > /proc/sys/kernel/printk
cd /capture && tar cf /capture.tar . && gzip -9 /capture.tar
sum=$(sha256sum /capture.tar.gz | cut -d' ' -f1)
echo "NG-CAPTURE-BEGIN"
base64 /capture.tar.gz
echo "NG-CAPTURE-END $sum"
poweroff -f
EOF
    chmod 755 "$1"
}

build_initramfs() {
    local root="$BUILD_DIR/initramfs"
    initramfs_skeleton "$root"
    cp /usr/bin/numactl "$root/usr/bin/numactl"
    local lib
    for lib in $(ldd /usr/bin/numactl | grep -o '/[^ ]*'); do
        case $lib in
            */ld-linux*) cp -L "$lib" "$root/lib64/" ;;
            *) cp -L "$lib" "$root/lib/x86_64-linux-gnu/" ;;
        esac
    done
    cp "$BUILD_DIR/nghelper" "$root/bin/nghelper"
    initramfs_modules "$root" "${INITRAMFS_MODULES[@]}"
    write_init "$root/init"
    pack_initramfs "$root" "$BUILD_DIR/initramfs.cpio.gz"
    log "initramfs: $(du -h "$BUILD_DIR/initramfs.cpio.gz" | cut -f1)"
}

# --------------------------------------------------------------------------
# Boot + decode (qemu argument builders qa_*, shell_join: lib.sh)
# --------------------------------------------------------------------------

# boot_capture NAME  (uses QARGS, KARGS, MEM_MB)
boot_capture() {
    local name=$1 out="$FIXTURE_DIR/$1" logf="$BUILD_DIR/logs/$1.console.log"
    mkdir -p "$BUILD_DIR/logs"
    local append="nokaslr console=ttyS0 panic=-1 rdinit=/init ${KARGS[*]}"
    append=${append% }
    local -a cmd=("$QEMU" -machine pc -accel tcg -cpu max -m "${MEM_MB}M"
                  "${QARGS[@]}"
                  -kernel "$KERNEL_IMAGE" -initrd initramfs.cpio.gz
                  -append "$append" -nographic -no-reboot)
    log "[$name] booting: ${cmd[*]}"
    local t0=$SECONDS rc=0
    (cd "$BUILD_DIR" && timeout "$BOOT_TIMEOUT" "${cmd[@]}" </dev/null >"$logf" 2>&1) || rc=$?
    log "[$name] qemu exited rc=$rc after $((SECONDS - t0)) s (log: $logf)"

    local tgz="$BUILD_DIR/logs/$name.tar.gz" want got
    tr -d '\r' <"$logf" | sed -n '/^NG-CAPTURE-BEGIN$/,/^NG-CAPTURE-END /p' \
        | sed '1d;$d' | base64 -d >"$tgz" || die "[$name] no capture in console log"
    want=$(tr -d '\r' <"$logf" | sed -n 's/^NG-CAPTURE-END \([0-9a-f]*\)$/\1/p')
    got=$(sha256sum "$tgz" | cut -d' ' -f1)
    [[ -n $want && $want == "$got" ]] || die "[$name] capture checksum mismatch (want '$want', got '$got')"

    rm -rf "$out"; mkdir -p "$out"
    tar -xzf "$tgz" -C "$out" --no-same-owner --no-same-permissions -m
    find "$out" -type d -exec chmod 755 {} + ; find "$out" -type f -exec chmod 644 {} +
    shell_join "${cmd[@]}" >"$out/qemu-cmdline.txt"
    log "[$name] fixture written to $out ($(find "$out" -type f | wc -l) files)"
}

# --------------------------------------------------------------------------
# Host configurations (one function each)
# --------------------------------------------------------------------------

# Non-NUMA box: no SRAT at all, the kernel fakes node 0.
cfg_1node() {
    qa_reset
    qa_smp 2 1
    qa_mem 512
}

cfg_2node() {
    qa_reset
    qa_smp 4 2
    qa_node 0 512 0-1
    qa_node 1 512 2-3
    qa_dist "10 21" \
            "21 10"
}

# 4-socket ring: 0-1-3-2-0 neighbours at 21, diagonals at 31; unequal sizes.
cfg_4node() {
    qa_reset
    qa_smp 4 4
    qa_node 0 256 0
    qa_node 1 384 1
    qa_node 2 384 2
    qa_node 3 192 3
    qa_dist "10 21 21 31" \
            "21 10 31 21" \
            "21 31 10 21" \
            "31 21 21 10"
}

# 8 sockets, two-level (pairs / quads / far) like large glueless boxes.
cfg_8node() {
    qa_reset
    qa_smp 8 8
    local sizes=(128 256 192 128 256 192 128 256) i
    for i in {0..7}; do qa_node "$i" "${sizes[i]}" "$i"; done
    qa_dist "10 12 17 17 19 19 19 19" \
            "12 10 17 17 19 19 19 19" \
            "17 17 10 12 19 19 19 19" \
            "17 17 12 10 19 19 19 19" \
            "19 19 19 19 10 12 17 17" \
            "19 19 19 19 12 10 17 17" \
            "19 19 19 19 17 17 10 12" \
            "19 19 19 19 17 17 12 10"
}

# Node 2 has a CPU but no memory (qemu: -numa node without memdev).
cfg_memoryless() {
    qa_reset
    qa_smp 3 3
    qa_node 0 512 0
    qa_node 1 512 1
    qa_node 2 0 2
    qa_dist "10 21 21" \
            "21 10 21" \
            "21 21 10"
}

# Node 2 has memory but no CPUs (CXL / far-memory style).
cfg_cpuless() {
    qa_reset
    qa_smp 4 2
    qa_node 0 512 0-1
    qa_node 1 512 2-3
    qa_node 2 256 ""
    qa_dist "10 21 24" \
            "21 10 24" \
            "24 24 10"
}

cfg_offline-cpus() {
    cfg_2node
    KARGS+=(ng.offline=3)
}

# 2 MiB and 1 GiB pools per node (boot-time, per-node syntax); 4 + 2 of the
# 2 MiB pages are kept mapped by a MAP_HUGETLB process so free < total.
cfg_hugepages() {
    qa_reset
    qa_smp 4 2
    qa_node 0 512 0-1
    qa_node 1 2048 2-3
    qa_dist "10 21" \
            "21 10"
    # shellcheck disable=SC2054  # commas belong to the kernel parameters
    KARGS+=(hugepagesz=1G hugepages=0:0,1:1 hugepagesz=2M hugepages=0:16,1:8
            ng.hugehog=0:4,1:2)
}

# zram swap (module from the same kernel package), part of a process's anon
# memory pushed out with cgroup v2 memory.reclaim so SwapFree < SwapTotal.
cfg_swap() {
    cfg_2node
    KARGS+=(ng.zram=64M ng.swapout=32M)
}

# --------------------------------------------------------------------------

main() {
    local do_apt=1 a
    local -a todo=()
    for a in "$@"; do
        case $a in
            --no-apt) do_apt=0 ;;
            --list) printf '%s\n' "${CONFIGS[@]}"; return 0 ;;
            -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; return 0 ;;
            -*) die "unknown option $a" ;;
            *) declare -F "cfg_$a" >/dev/null || die "unknown configuration $a"; todo+=("$a") ;;
        esac
    done
    ((${#todo[@]})) || todo=("${CONFIGS[@]}")

    mkdir -p "$BUILD_DIR" "$FIXTURE_DIR"
    ((do_apt)) && install_deps "${APT_PACKAGES[@]}"
    fetch_kernel
    build_helper
    build_initramfs

    local t0=$SECONDS name
    for name in "${todo[@]}"; do
        "cfg_$name"
        boot_capture "$name"
    done
    log "captured ${#todo[@]} configuration(s) in $((SECONDS - t0)) s"
}

main "$@"
