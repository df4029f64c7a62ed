#!/bin/busybox sh
# /init of the NUMA oracle initramfs (busybox sh). Runs the experiments of /plans/<ng.plan>.plan,
# written by run_oracle.py, and ships the raw measurements over the serial console as
# base64(tar.gz) between markers, one block per experiment; then powers off.
#
# Plan lines (one experiment = exp ... run):
#   exp NAME
#   swap KIB                  zram swap of this size for the experiment (0: none)
#   min_free_kbytes N         vm.min_free_kbytes for the experiment
#   live STEPNAME             copy /proc/PID/numa_maps (+ memory.numa_stat) while it holds
#   step IDX NAME alloc POLICY NODES SIZE_KIB CPU_NODE CPUSET_MEMS OOM_ADJ API
#                             (API: set_mempolicy = task policy, mbind = on the mapping)
#   step IDX NAME free
#   run
# NODES / CPUSET_MEMS are "-" when not given.  Every hog holds its memory until a free step
# or the end of the experiment (the simulator keeps a task's memory until it is freed).
# After each step: per-node meminfo, /proc/meminfo, swap/OOM counters of /proc/vmstat, the
# step's kernel log (dmesg -c) and every live hog's /proc/PID/numa_maps.
#   step IDX NAME qemu POLICY NODES SIZE_KIB CPU_NODE CPUSET_MEMS OOM_ADJ API
#                             (the initramfs of build_oracle.sh --qemu: qemu-system-x86_64 -S
#                             with a libvirt-style prealloc'd memory-backend-ram of SIZE_KIB,
#                             POLICY on host-nodes NODES; run as /bin/NAME, a symlink, so that
#                             the OOM killer prints NAME; held until the experiment ends)
#   qarg NAME ARG             one argument of the QEMU command line step NAME runs instead of
#                             the one above (qemu_chain.py: libvirt's own argv; ARG has no
#                             spaces); the step then waits for VmRSS >= SIZE_KIB
#                             (VmRSS + HugetlbPages: hugetlb pages are not in VmRSS)
#   qpin NAME VCPU CPULIST    pin step NAME's thread "CPU VCPU/TCG" (libvirt's vcpupin) once
#                             it exists; a QEMU with -monitor pipe:/run/NAME.mon is then
#                             resumed (HMP cont), as libvirt resumes a guest it started paused
#   hugepages NODE PAGES      reserve PAGES 2 MiB pages on NODE before the experiment (0 after)
#   hugetlbfs MOUNT DIR       hugetlbfs (2 MiB) mounted at MOUNT, DIR made (libvirt's mem-path)
export PATH=/bin:/sbin:/usr/bin
# The QEMU initramfs (/etc/ng-qemu-root): the kernel unpacked it (54 MiB) on whichever node it
# allocated from; copy it into a tmpfs bound to node ng.rootnode= and switch_root there, so the
# file pages of qemu and its libraries sit on a known node and the unpacked copy is freed.
if [ -f /etc/ng-qemu-root ] && [ -z "$NG_SWITCHED" ]; then
    mount -t proc proc /proc
    rootnode=0
    for w in $(cat /proc/cmdline); do case "$w" in ng.rootnode=*) rootnode=${w#*=} ;; esac; done
    umount /proc
    mkdir -p /newroot
    mount -t tmpfs -o "mpol=bind:$rootnode,size=128m" tmpfs /newroot
    for e in /*; do
        case "$e" in /proc|/sys|/dev|/newroot) mkdir -p "/newroot$e" ;; *) cp -a "$e" /newroot/ ;; esac
    done
    export NG_SWITCHED=$rootnode
    exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /run /out

say() { echo "ng-oracle: $*"; }
param() {
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1="*) echo "${w#*=}" ;; esac
    done
}

# Pure allocator placement: no NUMA balancing (it migrates pages), no THP (order-9 pages and a
# raised min_free_kbytes).  The kernel command line already asks for both; make sure.
# (run_qemu_oracle.py --thp always boots with transparent_hugepage=always: then THP stays on.)
echo 0 > /proc/sys/kernel/numa_balancing 2>/dev/null
if [ "$(param transparent_hugepage)" != always ]; then
    echo never > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
    echo never > /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null
fi
# the shell and its helpers are never OOM victims (children inherit; hogs set their own)
echo -1000 > /proc/self/oom_score_adj
# keep kernel messages (OOM reports) off the console: the serial line carries our markers
echo 1 > /proc/sys/kernel/printk
echo "+cpuset +memory" > /sys/fs/cgroup/cgroup.subtree_control || say "cgroup controllers?"

for m in $(cat /lib/modules/load-order 2>/dev/null); do
    insmod "/lib/modules/$m" || say "insmod $m failed"
done

ship() { # ship DIR TAG
    ( cd "$1" && tar cf - . ) | gzip -9 > /run/ship.tgz
    sum=$(sha256sum /run/ship.tgz | cut -d' ' -f1)
    echo "NG-ORACLE-BEGIN $2"
    base64 /run/ship.tgz
    echo "NG-ORACLE-END $2 $sum"
    rm -f /run/ship.tgz
}

vmcounters() { grep -E '^(pswpin|pswpout|oom_kill|pgscan_kswapd|pgscan_direct|pgsteal_kswapd|pgsteal_direct|numa_hit|numa_miss|numa_foreign|numa_interleave|numa_local|numa_other) ' /proc/vmstat; }

nodes_meminfo() { for n in /sys/devices/system/node/node[0-9]*; do cat $n/meminfo; done; }

snap() { # snap PREFIX: per-node meminfo + /proc/meminfo
    nodes_meminfo > "$1.nodes"
    cat /proc/meminfo > "$1.meminfo"
}

# ---- the boot itself -----------------------------------------------------------------------
B=/out/boot; mkdir -p $B
cat /proc/version > $B/version
cat /proc/cmdline > $B/cmdline
dmesg > $B/dmesg
for n in /sys/devices/system/node/node[0-9]*; do
    id=${n##*node}
    echo "$id $(cat $n/cpulist) $(cat $n/distance)" >> $B/nodes
done
cat /sys/kernel/mm/transparent_hugepage/enabled > $B/thp
cat /proc/sys/kernel/numa_balancing > $B/numa_balancing
cat /proc/sys/vm/min_free_kbytes > $B/min_free_kbytes
cat /proc/zoneinfo > $B/zoneinfo
snap $B/boot
ship $B boot
dmesg -c > /dev/null

# ---- experiments ---------------------------------------------------------------------------
D=""
is_live() { case " $LIVE " in *" $1 "*) return 0 ;; esac; return 1; }
hog_start() { # IDX NAME POLICY NODES SIZE_KIB CPU_NODE CPUSET ADJ API
    idx=$1 name=$2 policy=$3 nodes=$4 kib=$5 cpun=$6 cpuset=$7 adj=$8 api=$9
    cpus=$(cat /sys/devices/system/node/node$cpun/cpulist)
    cg=""
    if [ "$cpuset" != "-" ] || is_live "$name"; then
        cg=/sys/fs/cgroup/ng-$name
        mkdir -p $cg
        echo "$cg" >> /run/cgroups
        if [ "$cpuset" != "-" ]; then
            cat /sys/devices/system/cpu/online > $cg/cpuset.cpus
            echo "$cpuset" > $cg/cpuset.mems || say "cpuset.mems $cpuset failed"
        fi
    fi
    set -- --name "$name" --size-kib "$kib" --policy "$policy" --cpus "$cpus" \
        --oom-score-adj "$adj" --api "$api" --progress "$D/s$idx.progress" --hold
    [ "$nodes" != "-" ] && set -- "$@" --nodes "$nodes"
    echo "$name" >> /run/hogs
    rm -f "$D/$name.pid"
    ( sh -c 'echo $$ > "$0"; if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs"; fi; shift;
             exec /bin/hog "$@"' "$D/$name.pid" "$cg" "$@" \
        > "$D/s$idx.out" 2> "$D/s$idx.err" < /dev/null
      echo $? > "$D/$name.rc" ) &
    # wait for its report, or its death (OOM kill), at most ~5 min
    t=0
    while [ ! -s "$D/$name.rc" ] && ! grep -q '^{' "$D/s$idx.out" 2>/dev/null; do
        sleep 0.1
        t=$((t + 1))
        if [ $t -gt 3000 ]; then
            say "step $idx ($name) timed out"; echo timeout > "$D/s$idx.timeout"
            kill -9 "$(cat "$D/$name.pid")" 2>/dev/null
            break
        fi
    done
}

json_nodes() { # "0-1,3" -> 0,1,3
    out=""
    for part in $(echo "$1" | tr ',' ' '); do
        a=${part%-*}; b=${part#*-}
        for n in $(seq "$a" "$b"); do out="$out${out:+,}$n"; done
    done
    echo "$out"
}

qemu_start() { # IDX NAME POLICY NODES SIZE_KIB CPU_NODE CPUSET ADJ
    idx=$1 name=$2 policy=$3 nodes=$4 kib=$5 cpun=$6 cpuset=$7 adj=$8
    cpus=$(cat /sys/devices/system/node/node$cpun/cpulist)
    cg=""
    if [ "$cpuset" != "-" ]; then
        cg=/sys/fs/cgroup/ng-$name
        mkdir -p $cg
        echo "$cg" >> /run/cgroups
        cat /sys/devices/system/cpu/online > $cg/cpuset.cpus
        echo "$cpuset" > $cg/cpuset.mems || say "cpuset.mems $cpuset failed"
    fi
    # the memory backend as libvirt 9 writes it (qemuBuildMemoryBackendProps: JSON -object,
    # host-nodes + policy for <memnode>/<memory mode>, prealloc); one vCPU, so one prealloc thread
    obj="{\"qom-type\":\"memory-backend-ram\",\"id\":\"ram-node0\",\"size\":$((kib * 1024))"
    [ "$policy" != default ] && obj="$obj,\"host-nodes\":[$(json_nodes "$nodes")],\"policy\":\"$policy\""
    obj="$obj,\"prealloc\":true}"
    ln -sf /usr/bin/qemu-system-x86_64 /bin/$name
    if [ -s "/run/qargv.$name" ]; then
        set --
        while IFS= read -r a; do set -- "$@" "$a"; done < "/run/qargv.$name"
    else
    set -- -name "guest=$name,debug-threads=on" -S -no-user-config -nodefaults \
        -machine pc,accel=tcg -cpu qemu64 -m "size=${kib}k" -smp 1,sockets=1,cores=1,threads=1 \
        -object "$obj" -numa node,nodeid=0,cpus=0,memdev=ram-node0 \
        -display none -monitor none -serial none
    fi
    echo "$name $*" >> "$D/qemu.argv"
    pins=""
    if [ -s "/run/qpin.$name" ]; then
        pins=todo
        rm -f "/run/$name.mon.in" "/run/$name.mon.out"
        mkfifo "/run/$name.mon.in" "/run/$name.mon.out"
    fi
    echo "$name" >> /run/hogs
    rm -f "$D/$name.pid"
    ( sh -c 'echo $$ > "$0"; echo "$1" > /proc/self/oom_score_adj
             if [ -n "$2" ]; then echo $$ > "$2/cgroup.procs"; fi
             c=$3 n=$4; shift 4; exec taskset -c "$c" "/bin/$n" "$@"' \
        "$D/$name.pid" "$adj" "$cg" "$cpus" "$name" "$@" \
        > "$D/s$idx.out" 2> "$D/s$idx.err" < /dev/null
      echo $? > "$D/$name.rc" ) &
    # ready: paused (-S) with guest RAM preallocated, i.e. VmRSS above the guest size and
    # unchanged over three looks 0.3 s apart; or dead (OOM kill); at most ~5 min
    t=0 last=-1 same=0
    while [ ! -s "$D/$name.rc" ]; do
        sleep 0.3
        t=$((t + 1))
        pid=$(cat "$D/$name.pid" 2>/dev/null)
        rss=$(awk '/^(VmRSS|HugetlbPages):/ { s += $2; n++ } END { if (n) print s }' \
              /proc/$pid/status 2>/dev/null)
        [ -n "$rss" ] || continue
        if [ -n "$pins" ] && qemu_pin "$idx" "$name" "$pid"; then pins=""; fi
        # keep the last non-empty look (a read as the OOM killer takes it comes back empty)
        cat /proc/$pid/numa_maps > /run/look 2>/dev/null
        [ -s /run/look ] && mv /run/look "$D/s$idx.$name.last_numa_maps"
        if [ "$rss" -ge "$kib" ] && [ "$rss" = "$last" ]; then same=$((same + 1)); else same=0; fi
        last=$rss
        [ $same -ge 2 ] && break
        if [ $t -gt 1000 ]; then
            say "step $idx ($name) timed out"; echo timeout > "$D/s$idx.timeout"
            kill -9 "$pid" 2>/dev/null
            break
        fi
    done
}

hugepages_set() { # "NODE:PAGES ..." [PAGES]: per-node 2 MiB pools (PAGES given: all to it)
    for np in $1; do
        echo "${2:-${np#*:}}" > \
            "/sys/devices/system/node/node${np%%:*}/hugepages/hugepages-2048kB/nr_hugepages" ||
            say "hugepages $np failed"
    done
}

qemu_pin() { # IDX NAME PID: pin the vCPU threads of /run/qpin.NAME; 0 once all were found
    local task vcpu list tid
    for task in /proc/$3/task/*; do echo "${task##*/} $(cat "$task/comm" 2>/dev/null)"; done \
        > /run/tasks
    while read -r vcpu list; do
        grep -q " CPU $vcpu/TCG\$" /run/tasks || return 1
    done < "/run/qpin.$2"
    while read -r vcpu list; do
        tid=$(grep " CPU $vcpu/TCG\$" /run/tasks | cut -d' ' -f1)
        taskset -p -c "$list" "$tid" > /dev/null
        echo "$vcpu $tid $(taskset -p "$tid")" >> "$D/s$1.$2.pins"
    done < "/run/qpin.$2"
    taskset -p "$3" > "$D/s$1.$2.emulator_affinity"
    if grep -qx "pipe:/run/$2.mon" "/run/qargv.$2"; then echo cont > "/run/$2.mon.in"; fi
    return 0
}

hog_stop() { # NAME SIGNAL
    pid=$(cat "$D/$1.pid" 2>/dev/null)
    [ -n "$pid" ] && kill -"$2" "$pid" 2>/dev/null
    t=0
    while [ ! -s "$D/$1.rc" ] && [ $t -lt 600 ]; do sleep 0.1; t=$((t + 1)); done
}

run_exp() {
    D=/out/$EXP; mkdir -p $D
    : > /run/hogs; : > /run/cgroups
    say "experiment $EXP"
    if [ "$SWAP" != 0 ]; then
        echo 1 > /sys/block/zram0/reset
        echo "${SWAP}K" > /sys/block/zram0/disksize
        mkswap /dev/zram0 > /dev/null
        swapon /dev/zram0 || say "swapon failed"
    fi
    old_mfk=$(cat /proc/sys/vm/min_free_kbytes)
    [ -n "$MINFREE" ] && echo "$MINFREE" > /proc/sys/vm/min_free_kbytes
    hugepages_set "$HUGE"
    if [ -s /run/hugetlbfs ]; then
        while read -r mnt dir; do
            grep -q " $mnt hugetlbfs " /proc/mounts ||
                { mkdir -p "$mnt"; mount -t hugetlbfs -o pagesize=2M hugetlbfs "$mnt"; }
            mkdir -p "$dir"
        done < /run/hugetlbfs
        cat /proc/mounts > $D/mounts
    fi
    sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1
    dmesg -c > $D/pre.dmesg
    cat /proc/zoneinfo > $D/zoneinfo
    cat /proc/sys/vm/min_free_kbytes > $D/min_free_kbytes
    cat /proc/swaps > $D/swaps
    snap $D/start
    date +%s > $D/t0
    while read -r kw idx name action policy nodes kib cpun cpuset adj api; do
        snap $D/s$idx.before
        vmcounters > $D/s$idx.before.vmstat
        if [ "$action" = alloc ]; then
            hog_start "$idx" "$name" "$policy" "$nodes" "$kib" "$cpun" "$cpuset" "$adj" "$api"
        elif [ "$action" = qemu ]; then
            qemu_start "$idx" "$name" "$policy" "$nodes" "$kib" "$cpun" "$cpuset" "$adj"
        else
            hog_stop "$name" TERM
        fi
        sleep 0.3   # let an OOM victim's memory come back (oom_reaper, exit)
        for h in $(cat /run/hogs); do
            pid=$(cat "$D/$h.pid" 2>/dev/null)
            if [ -n "$pid" ] && [ ! -s "$D/$h.rc" ]; then
                echo "$h $pid alive $(grep -E '^(VmRSS|VmSwap)' /proc/$pid/status | tr -s ' \n' '  ')"
                cat /proc/$pid/numa_maps > "$D/s$idx.$h.numa_maps" 2>/dev/null
            else
                echo "$h ${pid:--} dead $(cat "$D/$h.rc" 2>/dev/null)"
            fi
        done > $D/s$idx.hogs
        snap $D/s$idx.after
        vmcounters > $D/s$idx.after.vmstat
        dmesg -c > $D/s$idx.dmesg
        if is_live "$name" && [ "$action" = alloc ] && [ ! -s "$D/$name.rc" ]; then
            pid=$(cat "$D/$name.pid")
            mkdir -p $D/live
            cat /proc/$pid/numa_maps > $D/live/numa_maps 2>/dev/null
            cat /proc/$pid/status > $D/live/status 2>/dev/null
            cg=/sys/fs/cgroup/ng-$name
            [ -d $cg ] && for f in memory.numa_stat memory.stat cpuset.mems cpuset.mems.effective; do
                cat $cg/$f > $D/live/$f 2>/dev/null
            done
        fi
    done < /run/steps
    snap $D/end
    for h in $(cat /run/hogs); do hog_stop "$h" 9; done
    wait
    if [ -n "$HUGE" ]; then nodes_meminfo > $D/stopped.nodes; hugepages_set "$HUGE" 0; fi
    if [ "$SWAP" != 0 ]; then swapoff /dev/zram0; echo 1 > /sys/block/zram0/reset; fi
    echo "$old_mfk" > /proc/sys/vm/min_free_kbytes
    for cg in $(cat /run/cgroups); do rmdir "$cg" 2>/dev/null; done
    echo $(( $(date +%s) - $(cat $D/t0) )) > $D/seconds
    dmesg -c > $D/post.dmesg
    ship $D "exp $EXP"
    rm -rf $D
}

PLAN=/plans/$(param ng.plan).plan
[ -f "$PLAN" ] || say "no plan $PLAN"
EXP=""; SWAP=0; MINFREE=""; LIVE=""; HUGE=""
while read -r kw a b; do
    case "$kw" in
        exp) EXP=$a; SWAP=0; MINFREE=""; LIVE=""; HUGE=""; : > /run/steps
             rm -f /run/qargv.* /run/qpin.* /run/hugetlbfs ;;
        qarg) echo "$b" >> "/run/qargv.$a" ;;
        qpin) echo "$b" >> "/run/qpin.$a" ;;
        hugepages) HUGE="$HUGE $a:$b" ;;
        hugetlbfs) echo "$a $b" >> /run/hugetlbfs ;;
        swap) SWAP=$a ;;
        min_free_kbytes) MINFREE=$a ;;
        live) LIVE="$LIVE $a" ;;
        step) echo "$kw $a $b" >> /run/steps ;;
        run) run_exp < /dev/null ;;
    esac
done < "$PLAN"
echo "NG-ORACLE-DONE"
poweroff -f
