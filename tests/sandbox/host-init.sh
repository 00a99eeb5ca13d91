#!/bin/bash
# PID 1 set-up of one sandbox host. sandbox.sh starts this as
#   nsenter --net=NETNS unshare --mount --uts --ipc --pid --fork --kill-child --propagation private \
#       bash host-init.sh NAME HOSTDIR [HIDE_PATH...]
# so it runs as PID 1 of a fresh pid namespace, in the host's network namespace, with private
# mounts. It builds the host's root (overlay of the real / with HOSTDIR/upper), pivots into it
# and execs tini, whose child starts sshd from /etc/init.d/ssh and then sleeps forever.
# Output goes to HOSTDIR/log (opened by sandbox.sh). Not meant to be run by hand.
set -euo pipefail

name=$1 hostdir=$2
shift 2

# Our PID as seen from the main pid namespace: /proc is still the main one at this point.
read -r outer_pid _ </proc/self/stat
echo "$outer_pid" >"$hostdir/pid1.tmp"
mv -f "$hostdir/pid1.tmp" "$hostdir/pid1"

hostname "$name"

R=$hostdir/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$hostdir/upper,workdir=$hostdir/work" "$R"

mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"

mount -t tmpfs -o nosuid,mode=755,size=4m tmpfs "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3
mknod -m 666 "$R/dev/zero" c 1 5
mknod -m 666 "$R/dev/full" c 1 7
mknod -m 666 "$R/dev/random" c 1 8
mknod -m 666 "$R/dev/urandom" c 1 9
mknod -m 666 "$R/dev/tty" c 5 0
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
ln -s /proc/kcore "$R/dev/core"
mkdir -m 755 "$R/dev/pts"
mkdir -m 1777 "$R/dev/shm"
mount -t devpts -o newinstance,nosuid,noexec,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$R/dev/shm"

# No /run/systemd/system here, so `service X start` uses the /etc/init.d scripts.
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$R/run"
mkdir -m 1777 "$R/run/lock"
mkdir -m 755 "$R/run/sshd"
: >"$R/run/utmp"
chmod 664 "$R/run/utmp"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$R/tmp"

# The repo checkout, the sandbox state (controller key, other hosts' upper dirs) and any extra
# paths: empty and private in here.
for p in "$@"; do
    if [ -d "$R$p" ] && ! mountpoint -q "$R$p"; then
        mount -t tmpfs -o nosuid,nodev,mode=755,size=1m tmpfs "$R$p"
    fi
done

cd "$R"
pivot_root . .
umount -l .
cd /

exec /usr/bin/tini -- /bin/sh -c '/etc/init.d/ssh start; exec sleep infinity'
