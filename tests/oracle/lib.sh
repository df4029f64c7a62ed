# lib.sh - shared pieces of the qemu kernel harnesses (capture_sysfs.sh, build_oracle.sh).
#
# Source it from bash after setting SCRIPT_DIR; it defines REPO_ROOT, BUILD_DIR, QEMU,
# KERNEL_ABI defaults and these functions:
#   log / die                      messages prefixed with $LOG_TAG
#   install_deps PKG...            apt-get install (root; Debian packages)
#   fetch_kernel                   apt-get download + dpkg -x linux-image-6.1.0-N-amd64;
#                                  sets KVER, KERNEL_IMAGE (relative to BUILD_DIR), MODDIR
#   module_closure REL             a module and its depends=, load order, relative to MODDIR
#   initramfs_skeleton ROOT        busybox-static tree with applet links
#   initramfs_modules ROOT REL...  copy modules (+ dependencies), write lib/modules/load-order
#   pack_initramfs ROOT OUT        newc cpio, gzip -9
#   qa_reset / qa_smp / qa_node / qa_dist / qa_mem   qemu argument builders (QARGS, KARGS, MEM_MB)
#   shell_join ARG...              one shell-quoted line
#
# The kernel package is only extracted with dpkg -x, never installed on the host.
# shellcheck disable=SC2034  # KVER, KERNEL_IMAGE, MODDIR, KARGS are read by the sourcing script

REPO_ROOT=${REPO_ROOT:-$(cd "$SCRIPT_DIR/../.." && pwd)}
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/.oracle-build}
QEMU=${QEMU:-qemu-system-x86_64}
KERNEL_ABI=${KERNEL_ABI:-}
LOG_TAG=${LOG_TAG:-oracle}

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# Host preparation
# --------------------------------------------------------------------------

install_deps() {
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    ((${#missing[@]})) || { log "Debian packages present: $*"; return 0; }
    [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]} (or install them first)"
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Sets KVER (e.g. 6.1.0-56-amd64), KERNEL_IMAGE (relative to BUILD_DIR), MODDIR.
fetch_kernel() {
    local abi=$KERNEL_ABI
    if [[ -z $abi ]]; then
        abi=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
              | awk '{print $1}' | sed -E 's/^linux-image-(6\.1\.0-[0-9]+)-amd64$/\1/' \
              | sort -V | tail -n1)
        if [[ -z $abi ]]; then
            # no apt lists (apt-get update not run): use an already extracted kernel
            abi=$(find "$BUILD_DIR" -maxdepth 1 -name 'kernel-6.1.0-*-amd64' -printf '%f\n' 2>/dev/null \
                  | sed -E 's/^kernel-(6\.1\.0-[0-9]+)-amd64$/\1/' | sort -V | tail -n1)
        fi
        [[ -n $abi ]] || die "no linux-image-6.1.0-N-amd64 package found (apt-get update?)"
    fi
    KVER="$abi-amd64"
    local pkgdir="$BUILD_DIR/kernel-$KVER"
    if [[ ! -f $pkgdir/boot/vmlinuz-$KVER ]]; then
        log "downloading linux-image-$KVER"
        mkdir -p "$BUILD_DIR/debs"
        # (apt warns about an unsandboxed download when run as root; harmless)
        (cd "$BUILD_DIR/debs" && apt-get download "linux-image-$KVER") 2>&1 \
            | grep -v '^W: Download is performed unsandboxed' >&2 || true
        local deb
        deb=$(find "$BUILD_DIR/debs" -maxdepth 1 -name "linux-image-${KVER}_*.deb" | sort -V | tail -n1)
        [[ -n $deb ]] || die "apt-get download linux-image-$KVER failed"
        rm -rf "$pkgdir"; mkdir -p "$pkgdir"
        dpkg -x "$deb" "$pkgdir"
    fi
    KERNEL_IMAGE="kernel-$KVER/boot/vmlinuz-$KVER"
    MODDIR="$pkgdir/lib/modules/$KVER"
    log "kernel $KVER"
}

# --------------------------------------------------------------------------
# Initramfs
# --------------------------------------------------------------------------

# Resolve "depends=" of a module (recursively); prints paths relative to MODDIR
# in load order (dependencies first).
module_closure() {
    local rel=$1 ko dep
    ko="$MODDIR/$rel"
    [[ -f $ko ]] || die "module $rel not in kernel package"
    for dep in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        module_closure "$(cd "$MODDIR" && find kernel -name "$dep.ko" | head -n1)"
    done
    echo "$rel"
}

initramfs_skeleton() {
    local root=$1 a
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,proc,sys,dev,run,tmp,lib/modules,lib64,lib/x86_64-linux-gnu}
    cp /bin/busybox "$root/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
        [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"
    done
}

# initramfs_modules ROOT REL...  (REL relative to MODDIR, e.g. kernel/drivers/block/zram/zram.ko)
initramfs_modules() {
    local root=$1 m rel seen=" "
    shift
    : >"$root/lib/modules/load-order"
    for m in "$@"; do
        for rel in $(module_closure "$m"); do
            [[ $seen == *" $rel "* ]] && continue
            seen+="$rel "
            cp "$MODDIR/$rel" "$root/lib/modules/"
            basename "$rel" >>"$root/lib/modules/load-order"
        done
    done
}

pack_initramfs() {
    local root=$1 out=$2
    (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) >"$out"
}

# --------------------------------------------------------------------------
# qemu argument builders (append to the global arrays QARGS / KARGS)
# --------------------------------------------------------------------------

MEM_MB=0
qa_reset() { QARGS=(); KARGS=(); MEM_MB=0; }
# qa_smp CPUS SOCKETS
qa_smp() { QARGS+=(-smp "$1,sockets=$2,cores=$(($1 / $2)),threads=1"); }
# qa_node NODEID SIZE_MB CPUS   (SIZE_MB 0 = memoryless, CPUS "" = cpuless)
qa_node() {
    local id=$1 mb=$2 cpus=$3 spec="node,nodeid=$1"
    [[ -n $cpus ]] && spec+=",cpus=$cpus"
    if ((mb > 0)); then
        QARGS+=(-object "memory-backend-ram,id=m$id,size=${mb}M")
        spec+=",memdev=m$id"
        MEM_MB=$((MEM_MB + mb))
    fi
    QARGS+=(-numa "$spec")
}
# qa_dist "ROW0" "ROW1" ...  full distance matrix, one string per row.
qa_dist() {
    local -a rows=("$@")
    local n=${#rows[@]} i j
    for ((i = 0; i < n; i++)); do
        local -a r
        read -ra r <<<"${rows[i]}"
        ((${#r[@]} == n)) || die "distance row $i has ${#r[@]} entries, want $n"
        for ((j = 0; j < n; j++)); do
            ((i == j)) && continue
            QARGS+=(-numa "dist,src=$i,dst=$j,val=${r[j]}")
        done
    done
}
# Plain memory without NUMA options (-m only).
qa_mem() { MEM_MB=$((MEM_MB + $1)); }

# Print arguments as one shell-quoted line (single quotes only where needed).
shell_join() {
    local a sep=""
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then printf '%s%s' "$sep" "$a"
        else printf "%s'%s'" "$sep" "${a//\'/\'\\\'\'}"; fi
        sep=" "
    done
    printf '\n'
}
