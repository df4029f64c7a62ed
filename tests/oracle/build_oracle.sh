#!/usr/bin/env bash
# build_oracle.sh - the host side of the NUMA oracle that run_oracle.py drives:
# installs the Debian parts, fetches the kernel (lib.sh), builds the static hog and the
# initramfs (busybox /init = oracle_init.sh, hog, zram modules, the plans of PLANS_DIR).
#
# Usage:  tests/oracle/build_oracle.sh [--no-apt] PLANS_DIR
# Prints  KVER=... KERNEL_IMAGE=... INITRD=... (paths relative to BUILD_DIR) on stdout.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=oracle
# shellcheck source=tests/oracle/lib.sh
. "$SCRIPT_DIR/lib.sh"

APT_PACKAGES=(qemu-system-x86 busybox-static gcc libc6-dev cpio)
INITRAMFS_MODULES=(kernel/drivers/block/zram/zram.ko)

do_apt=1
if [[ ${1:-} == --no-apt ]]; then do_apt=0; shift; fi
plans=${1:?usage: build_oracle.sh [--no-apt] PLANS_DIR}

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
pack_initramfs "$root" "$BUILD_DIR/oracle-initramfs.cpio.gz"
log "initramfs: $(du -h "$BUILD_DIR/oracle-initramfs.cpio.gz" | cut -f1)"
echo "KVER=$KVER"
echo "KERNEL_IMAGE=$KERNEL_IMAGE"
echo "INITRD=oracle-initramfs.cpio.gz"
