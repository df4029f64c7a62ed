#!/usr/bin/env bash
# build_oracle.sh - the host side of the NUMA oracle that run_oracle.py drives:
# installs the Debian parts, fetches the kernel (lib.sh), builds the static hog and the
# initramfs (busybox /init = oracle_init.sh, hog, zram modules, the plans of PLANS_DIR).
#
# Usage:  tests/oracle/build_oracle.sh [--no-apt] [--qemu] PLANS_DIR
# Prints  KVER=... KERNEL_IMAGE=... INITRD=... (paths relative to BUILD_DIR) on stdout.
#
# --qemu (run_qemu_oracle.py, `make oracle-qemu`) also packs Debian's qemu-system-x86_64 for
# nested QEMU experiments into oracle-qemu-initramfs.cpio.gz: the binary and every library
# `ldd` names, the separately packaged TCG accelerator module (Debian builds QEMU with modules:
# /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so, without which `-accel tcg` fails),
# bios-256k.bin (seabios) and kvmvapic.bin.  It also writes /etc/ng-qemu-root: the kernel
# unpacks the initramfs into rootfs pages on whichever node it allocates from (it varied from
# boot to boot here), so /init first copies itself into a tmpfs bound to one node (ng.rootnode=)
# and switch_roots into it (oracle_init.sh).  Without --qemu the initramfs is the same as before.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=oracle
# shellcheck source=tests/oracle/lib.sh
. "$SCRIPT_DIR/lib.sh"

APT_PACKAGES=(qemu-system-x86 busybox-static gcc libc6-dev cpio)
INITRAMFS_MODULES=(kernel/drivers/block/zram/zram.ko)

do_apt=1 do_qemu=0
if [[ ${1:-} == --no-apt ]]; then do_apt=0; shift; fi
if [[ ${1:-} == --qemu ]]; then do_qemu=1; shift; fi
plans=${1:?usage: build_oracle.sh [--no-apt] [--qemu] PLANS_DIR}

QEMU_BIN=/usr/bin/qemu-system-x86_64
QEMU_MODULE=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
# multiboot*.bin: the option ROM of -kernel with a multiboot image (qemu_chain.py's guest kernel)
QEMU_FIRMWARE=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin
               /usr/share/qemu/multiboot_dma.bin /usr/share/qemu/multiboot.bin)

# qemu_payload ROOT: qemu-system-x86_64, its libraries (ldd, dereferenced), the TCG module and
# the firmware it loads for `-machine pc`, at their host paths.
qemu_payload() {
    local root=$1 f lib
    for f in "$QEMU_BIN" "$QEMU_MODULE"; do
        [[ -f $f ]] || die "$f missing (apt-get install qemu-system-x86)"
        mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
        for lib in $(ldd "$f" | grep -oE '/[^ ]+\.so[^ ]*'); do
            [[ -e $root$lib ]] && continue
            mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
        done
    done
    mkdir -p "$root/usr/share/qemu"
    for f in "${QEMU_FIRMWARE[@]}"; do
        [[ -f $f ]] || die "$f missing"
        cp -L "$f" "$root/usr/share/qemu/"
    done
    mkdir -p "$root/etc"; : >"$root/etc/ng-qemu-root"
}

mkdir -p "$BUILD_DIR"
((do_apt)) && install_deps "${APT_PACKAGES[@]}"
fetch_kernel

gcc -static -O2 -Wall -Werror -o "$BUILD_DIR/hog" "$SCRIPT_DIR/hog.c"

root="$BUILD_DIR/oracle-initramfs"
initramfs_skeleton "$root"
initramfs_modules "$root" "${INITRAMFS_MODULES[@]}"
cp "$BUILD_DIR/hog" "$root/bin/hog"
install -m 755 "$SCRIPT_DIR/oracle_init.sh" "$root/init"
mkdir -p "$root/plans"
cp "$plans"/*.plan "$root/plans/"
for f in "$plans"/*.bin; do if [[ -f $f ]]; then cp "$f" "$root/plans/"; fi; done  # guest kernels
initrd=oracle-initramfs.cpio.gz
if ((do_qemu)); then
    qemu_payload "$root"
    initrd=oracle-qemu-initramfs.cpio.gz
    log "qemu payload: $(du -sh "$root" | cut -f1) unpacked"
fi
pack_initramfs "$root" "$BUILD_DIR/$initrd"
log "initramfs: $(du -h "$BUILD_DIR/$initrd" | cut -f1)"
echo "KVER=$KVER"
echo "KERNEL_IMAGE=$KERNEL_IMAGE"
echo "INITRD=$initrd"
