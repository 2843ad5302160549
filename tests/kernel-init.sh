#!/bin/busybox sh
# shellcheck shell=dash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# /init of the kernel matrix's initramfs (scripts/kernels): load the few
# modules for 9p, mount the host's root read-only, give it what is
# writable (tmpfs) and the kernel file systems (proc, sys, dev, bpffs),
# run tests/kernel-guest.sh there with the sets on the command line
# (smk.top=DIR smk.sets=a,b), then power off. Output: the serial console.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do
	insmod "/mod/$m" 2>/dev/null || echo "SMK-WARN cannot load $m"
done </mod/load

top=""
sets=""
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	smk.top=*) top=${arg#smk.top=} ;;
	smk.sets=*) sets=$(echo "${arg#smk.sets=}" | tr , ' ') ;;
	esac
done

r=/root
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $r; then
	echo "SMK-ERROR cannot mount the host root over 9p"
	reboot -f
fi
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/pts $r/dev/shm 2>/dev/null
mount -t devpts devpts $r/dev/pts
mount -t tmpfs tmpfs $r/dev/shm
mount -t bpf bpf $r/sys/fs/bpf
mount -t tmpfs tmpfs $r/sys/fs/cgroup 2>/dev/null
# /tmp and /var/tmp as on the host; the others (/run above all: the
# hand-off endpoints refuse a /run that others can write) root's alone
for d in /tmp /var/tmp; do
	[ -d $r$d ] && mount -t tmpfs -o mode=1777 tmpfs $r$d
done
for d in /run /var/log /var/lib/nginx /var/lib/haproxy /var/cache; do
	[ -d $r$d ] && mount -t tmpfs -o mode=0755 tmpfs $r$d
done
mkdir -p $r/var/log/nginx $r/var/lib/nginx/body $r/run/haproxy 2>/dev/null
# the tree under test comes as a share of its own: a checkout under /tmp
# (hidden by the tmpfs above) or on another mount is seen as well
mkdir -p $r/tmp/smk-tree
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose smktree \
	$r/tmp/smk-tree; then
	top=/tmp/smk-tree
fi

if [ ! -f "$r$top/tests/kernel-guest.sh" ]; then
	echo "SMK-ERROR $top is not visible in the guest"
else
	chroot $r /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
		/bin/sh -c "cd '$top' && exec sh tests/kernel-guest.sh $sets"
fi
sync
reboot -f
