#!/usr/bin/env bash
# sandbox.sh: N local "Debian hosts" (Linux namespaces, an overlay of the real root, a real sshd
# each) for end-to-end tests of the SSH provisioner. Run as root. See tests/sandbox/README.md.
#
#   sandbox.sh setup [--cache PKG...]
#   sandbox.sh up STATE NAME=IP [NAME=IP ...]
#   sandbox.sh down STATE
#   sandbox.sh exec STATE NAME -- CMD...
#   sandbox.sh rekey STATE NAME
#   sandbox.sh firewall STATE NAME ALLOW_IP|off [drop|reject]
#
# Environment:
#   INFRA_SANDBOX_SUBNET   /24 the hosts live in (default 10.213.0.0/24); the bridge gets .1
#   INFRA_SANDBOX_TIMEOUT  seconds `up` waits for every sshd to accept a login (default 60)
#   INFRA_SANDBOX_HIDE     extra colon-separated paths covered with an empty tmpfs in every host
set -euo pipefail
umask 022
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RUNDIR=/run/infra-sandbox          # global lock and the IP registry shared by all sandboxes
SUBNET_DEFAULT=10.213.0.0/24

die() { printf 'sandbox: %s\n' "$*" >&2; exit 1; }
warn() { printf 'sandbox: %s\n' "$*" >&2; }
now_ms() { local s; s=$(</proc/uptime); s=${s%% *}; echo $(( ${s%.*} * 1000 + 10#${s#*.} * 10 )); }

# Closes every fd above 2 of the current shell: long-lived processes (the hosts, daemons started
# through `exec`) must not keep the caller's pipes or our lock files open.
close_fds() {
    local f fd
    for f in /proc/"$BASHPID"/fd/*; do
        fd=${f##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
need_tools() {
    local t missing=()
    for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
    [ ${#missing[@]} = 0 ] || die "missing tools: ${missing[*]} (run: $0 setup)"
}

# ---------------------------------------------------------------- state
# Sets STATE (absolute), SID (6 hex digits derived from STATE's path) and, when the sandbox has
# been brought up before, SUBNET / PREFIX / BRIDGE from STATE/sandbox.env.
load_state() {
    [ -n "${1:-}" ] || die "missing STATE directory"
    STATE=$(realpath -m -- "$1")
    case $STATE in /) die "STATE must not be /";; *[[:space:]]*) die "STATE must not contain spaces";; esac
    SID=$(printf '%s' "$STATE" | sha1sum | cut -c1-6)
    SUBNET='' PREFIX='' BRIDGE=''
    if [ -f "$STATE/sandbox.env" ]; then
        # shellcheck disable=SC1091
        . "$STATE/sandbox.env"
    fi
}

# Validates INFRA_SANDBOX_SUBNET (a.b.c.0/24) into SUBNET, PREFIX (a.b.c) and BRIDGE.
pick_subnet() {
    local s=${INFRA_SANDBOX_SUBNET:-$SUBNET_DEFAULT}
    [[ $s =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.0/24$ ]] ||
        die "INFRA_SANDBOX_SUBNET must look like a.b.c.0/24, got '$s'"
    local o
    for o in "${BASH_REMATCH[@]:1:3}"; do [ "$o" -le 255 ] || die "bad subnet $s"; done
    SUBNET=$s
    PREFIX=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}
    BRIDGE=ib-${PREFIX//./-}
}

hosts_dir() { echo "$STATE/hosts"; }
ns_name() { echo "infra-$SID-$1"; }

# Is PID the PID 1 we started for netns NS? (PID-reuse guard)
pid_in_ns() {
    local pid=$1 ns=$2
    [[ $pid =~ ^[0-9]+$ ]] && [ -e "/run/netns/$ns" ] && [ /proc/"$pid"/ns/net -ef "/run/netns/$ns" ]
}

host_pid1() {
    local f; f=$(hosts_dir)/$1/pid1
    [ -f "$f" ] && cat "$f"
}

# Checks NAME is a host of this sandbox whose PID 1 is alive; prints the PID.
live_pid1() {
    local name=$1 ns pid
    [ -d "$(hosts_dir)/$name" ] || die "no host '$name' in $STATE"
    ns=$(ns_name "$name")
    pid=$(host_pid1 "$name" || true)
    pid_in_ns "$pid" "$ns" || die "host '$name' is not running (PID 1 '${pid:-?}' not in netns $ns)"
    echo "$pid"
}

write_hosts_tsv() {
    local d tmp="$STATE/hosts.tsv.tmp"
    : >"$tmp"
    if [ -d "$(hosts_dir)" ]; then
        for d in "$(hosts_dir)"/*/; do
            d=$(basename "$d")
            [ -f "$(hosts_dir)/$d/index" ] || continue
            printf '%s\t%s\t%s\t%s\t%s\n' "$(cat "$(hosts_dir)/$d/index")" "$d" \
                "$(cat "$(hosts_dir)/$d/ip")" "$(host_pid1 "$d" || echo -)" "$(ns_name "$d")"
        done | sort -n | cut -f2- >"$tmp"
    fi
    mv -f "$tmp" "$STATE/hosts.tsv"
}

write_ssh_config() {
    local name ip pid ns tmp="$STATE/ssh_config.tmp"
    {
        echo "# Written by tests/sandbox/sandbox.sh for $STATE"
        while IFS=$'\t' read -r name ip pid ns; do
            cat <<EOF

Host $name
    HostName $ip
    User root
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking accept-new
    BatchMode yes
    KexAlgorithms curve25519-sha256
    ConnectTimeout 10
EOF
        done <"$STATE/hosts.tsv"
    } >"$tmp"
    mv -f "$tmp" "$STATE/ssh_config"
}

# Makes the directory REL (relative to /) inside the upper dir UP, every component with the
# mode and owner of the real one: an upper directory's mode wins over the lower one.
mkdir_like() {
    local up=$1 rel=$2 path='' c
    local IFS=/
    for c in $rel; do
        [ -n "$c" ] || continue
        path=$path/$c
        if [ ! -d "$up$path" ]; then
            mkdir "$up$path"
            chmod --reference="$path" "$up$path"
            chown --reference="$path" "$up$path"
        fi
    done
}

# The part of every host's upper dir that is the same for all hosts of this sandbox.
make_template() {
    local t=$STATE/template f sbin usbin
    [ -f "$t/.done" ] && return 0
    rm -rf --one-file-system "$t"
    mkdir -p "$t"
    chmod --reference=/ "$t"
    chown --reference=/ "$t"

    # /root: opaque, Debian's stock dotfiles, the controller key authorized.
    mkdir "$t/root"
    chmod --reference=/root "$t/root"
    chown --reference=/root "$t/root"
    setfattr -n trusted.overlay.opaque -v y "$t/root"
    install -m 644 /usr/share/base-files/dot.bashrc "$t/root/.bashrc"
    install -m 644 /usr/share/base-files/dot.profile "$t/root/.profile"
    install -d -m 700 "$t/root/.ssh"
    install -m 600 "$STATE/id_ed25519.pub" "$t/root/.ssh/authorized_keys"

    # Host keys: the real ones must not show through. ed25519 and ecdsa are generated per host;
    # RSA is only hidden (a 3072-bit key takes ~0.2 s to generate).
    mkdir_like "$t" etc/ssh
    for f in /etc/ssh/ssh_host_*; do
        [ -e "$f" ] || continue
        rm -f "$t$f"
        mknod "$t$f" c 0 0
    done
    mknod "$t/etc/ssh/ssh_host_rsa_key" c 0 0 2>/dev/null || true
    mknod "$t/etc/ssh/ssh_host_rsa_key.pub" c 0 0 2>/dev/null || true
    for f in ecdsa ed25519; do rm -f "$t/etc/ssh/ssh_host_${f}_key" "$t/etc/ssh/ssh_host_${f}_key.pub"; done

    # Docker-image leftovers that stop services from starting / delete cached debs.
    usbin=$(realpath /usr/sbin)
    if [ -e /usr/sbin/policy-rc.d ]; then
        mkdir_like "$t" "$usbin"
        mknod "$t$usbin/policy-rc.d" c 0 0
    fi
    if [ -e /etc/apt/apt.conf.d/docker-clean ]; then
        mkdir_like "$t" etc/apt/apt.conf.d
        mknod "$t/etc/apt/apt.conf.d/docker-clean" c 0 0
        # Keep docker-clean's one useful part: without it apt writes ~80 MB of pkgcache.bin
        # and srcpkgcache.bin into every host's upper dir on its first run.
        printf '%s\n' '// infra sandbox host: no binary package caches (80 MB per host otherwise)' \
            'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
            >"$t/etc/apt/apt.conf.d/zz-infra-sandbox-no-pkgcache"
    fi
    # invoke-rc.d asks /sbin/runlevel (a link to systemctl in the image) for the runlevel.
    sbin=$(realpath /sbin)
    mkdir_like "$t" "$sbin"
    rm -f "$t$sbin/runlevel"
    printf '#!/bin/sh\n# sandbox host: no systemd, SysV-style runlevel for invoke-rc.d\necho "N 2"\n' \
        >"$t$sbin/runlevel"
    chmod 755 "$t$sbin/runlevel"

    touch "$t/.done"
}

ensure_controller_key() {
    if [ ! -f "$STATE/id_ed25519" ] || [ ! -f "$STATE/id_ed25519.pub" ]; then
        rm -f "$STATE/id_ed25519" "$STATE/id_ed25519.pub"
        ssh-keygen -q -t ed25519 -N '' -C "infra-sandbox@$SID" -f "$STATE/id_ed25519"
    fi
}

# The subnet must not be in use by anything but our bridge; prints the problem.
check_subnet_free() {
    local line
    while read -r line; do
        [ -n "$line" ] || continue
        case $line in default*|*" dev $BRIDGE "*|*" dev $BRIDGE") continue;; esac
        echo "subnet $SUBNET overlaps an existing route: $line (set INFRA_SANDBOX_SUBNET)"
        return 1
    done < <(ip -4 route show root "$SUBNET"; ip -4 route show match "$SUBNET")
    while read -r line; do
        [ -n "$line" ] || continue
        case $line in *" $BRIDGE "*) continue;; esac
        echo "an address in $SUBNET is already assigned outside the sandbox bridge: $line"
        return 1
    done < <(ip -4 -o addr show to "$SUBNET")
}

ensure_bridge() {
    if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
        ip link add name "$BRIDGE" type bridge
        echo 1 >"/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6" 2>/dev/null || true
        ip addr add "$PREFIX.1/24" dev "$BRIDGE"
        ip link set dev "$BRIDGE" up
    fi
    ip -4 -o addr show dev "$BRIDGE" | grep -q " $PREFIX\.1/24 " ||
        die "bridge $BRIDGE exists without address $PREFIX.1/24"
    # Belt and braces: hosts have no default route, and the main namespace must not route for
    # them even if a host adds one (ip_forward may be on): nothing crosses the bridge but
    # traffic between the hosts and the main namespace itself.
    if command -v nft >/dev/null; then
        nft -f - <<EOF || warn "could not add the forward guard for $BRIDGE (nftables)"
table inet $(guard_table)
delete table inet $(guard_table)
table inet $(guard_table) {
    chain forward {
        type filter hook forward priority -10; policy accept;
        iifname "$BRIDGE" oifname != "$BRIDGE" drop
        oifname "$BRIDGE" iifname != "$BRIDGE" drop
    }
}
EOF
    fi
}

guard_table() { echo "infra_sandbox_${PREFIX//./_}"; }

remove_bridge() {
    ip link delete "$BRIDGE" || return 1
    if command -v nft >/dev/null; then
        nft delete table inet "$(guard_table)" 2>/dev/null || true
    fi
}

global_lock() {
    mkdir -p "$RUNDIR/ips"
    exec 9>"$RUNDIR/lock"
    flock 9
}
global_unlock() { exec 9>&-; }

state_lock() {
    mkdir -p "$STATE"
    exec 8>"$STATE/.lock"
    flock 8
}

# ---------------------------------------------------------------- up
# Network and files of one host; prints nothing. Runs in parallel for several hosts.
create_host() {
    local name=$1 ip=$2 idx=$3 deadline=$4
    local ns veth hd
    ns=$(ns_name "$name")
    veth=iv$SID-$idx
    hd=$(hosts_dir)/$name

    ip netns add "$ns"
    # No IPv6 on eth0 (lo keeps ::1): nothing leaves the bridge but the hosts' IPv4.
    nsenter --net="/run/netns/$ns" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6' || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    echo 1 >"/proc/sys/net/ipv6/conf/$veth/disable_ipv6" 2>/dev/null || true
    ip link set dev "$veth" master "$BRIDGE" up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set dev eth0 up
    ip -n "$ns" link set dev lo up

    mkdir -p "$hd/root" "$hd/work"
    cp -a "$STATE/template" "$hd/upper"
    rm -f "$hd/upper/.done"
    printf '%s\n' "$name" >"$hd/upper/etc/hostname"
    printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
        "$ip" "$name" >"$hd/upper/etc/hosts"
    if [ -e /etc/machine-id ]; then
        local u; u=$(</proc/sys/kernel/random/uuid)
        printf '%s\n' "${u//-/}" >"$hd/upper/etc/machine-id"
    fi
    ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$hd/upper/etc/ssh/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -N '' -C "root@$name" -f "$hd/upper/etc/ssh/ssh_host_ecdsa_key"

    local hide=("$REPO" "$STATE") extra p
    IFS=: read -r -a extra <<<"${INFRA_SANDBOX_HIDE:-}"
    for p in "${extra[@]}"; do [ -n "$p" ] && hide+=("$(realpath -m -- "$p")"); done

    # Detached, with a clean environment and none of our fds (the caller's pipes, our locks).
    (
        close_fds
        exec setsid -f env -i PATH="$PATH" LANG=C.UTF-8 \
            nsenter --net="/run/netns/$ns" -- \
            unshare --mount --uts --ipc --pid --fork --kill-child --propagation private -- \
            /bin/bash "$HERE/host-init.sh" "$name" "$hd" "${hide[@]}" \
            </dev/null >"$hd/log" 2>&1
    )
    # Return (and so release the STATE lock, which `down` takes) only once PID 1 has recorded
    # itself: a `down` racing a killed `up` then finds every process it has to kill.
    while [ ! -s "$hd/pid1" ]; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "PID 1 did not start; its log:"; sed 's/^/    /' "$hd/log" || true
            return 1
        fi
        sleep 0.02
    done
}

# known_hosts lines for NAME's current host keys, read from its upper dir.
known_lines() {
    local name=$1 ip=$2 f
    for f in "$(hosts_dir)/$name"/upper/etc/ssh/ssh_host_{ed25519,ecdsa}_key.pub; do
        [ -f "$f" ] && printf '%s %s\n' "$ip" "$(cut -d' ' -f1,2 "$f")"
    done
}

wait_login() {
    local name=$1 deadline=$2 err pid
    pid=$(host_pid1 "$name" || true)
    while :; do
        if err=$(ssh -F "$STATE/ssh_config" -o ConnectTimeout=3 "$name" true 2>&1 </dev/null); then
            return 0
        fi
        if ! pid_in_ns "$pid" "$(ns_name "$name")"; then
            printf 'PID 1 (%s) has exited\n' "$pid" >"$(hosts_dir)/$name/login-error"
            return 1
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            printf '%s\n' "$err" >"$(hosts_dir)/$name/login-error"
            return 1
        fi
        sleep 0.1
    done
}

cmd_up() {
    need_root
    need_tools ip nsenter unshare setsid ssh ssh-keygen setfattr flock tini mountpoint
    [ -x /usr/bin/tini ] || die "tini not installed (run: $0 setup)"
    load_state "${1:-}"; shift || true
    [ $# -gt 0 ] || die "usage: sandbox.sh up STATE NAME=IP [NAME=IP ...]"
    local t0; t0=$(now_ms)
    state_lock
    if [ -z "$SUBNET" ]; then
        pick_subnet
    elif [ -n "${INFRA_SANDBOX_SUBNET:-}" ] && [ "$INFRA_SANDBOX_SUBNET" != "$SUBNET" ]; then
        die "$STATE already uses subnet $SUBNET"
    fi

    # Parse and validate the arguments.
    local arg name ip names=() ips=() seen=" " seenip=" " newips=" "
    for arg in "$@"; do
        [[ $arg =~ ^([a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?)=([0-9.]+)$ ]] ||
            die "bad host '$arg': want NAME=IP, NAME of [a-z0-9-] (max 32 chars)"
        name=${BASH_REMATCH[1]} ip=${BASH_REMATCH[3]}
        [[ $ip =~ ^${PREFIX//./\\.}\.([0-9]{1,3})$ ]] && [ "${BASH_REMATCH[1]}" -ge 2 ] &&
            [ "${BASH_REMATCH[1]}" -le 254 ] ||
            die "$name: IP $ip is not a host address in $SUBNET (.2-.254; .1 is the bridge)"
        case $seen in *" $name "*) die "host '$name' given twice";; esac
        case $seenip in *" $ip "*) die "IP $ip given twice";; esac
        seen+="$name " seenip+="$ip "
        if [ -d "$(hosts_dir)/$name" ]; then
            if [ "$(cat "$(hosts_dir)/$name/ip" 2>/dev/null)" = "$ip" ] &&
                pid_in_ns "$(host_pid1 "$name" || true)" "$(ns_name "$name")"; then
                warn "$name ($ip) is already up"
                continue
            fi
            die "host '$name' already exists in $STATE (run down first)"
        fi
        [ ! -e "/run/netns/$(ns_name "$name")" ] ||
            die "netns $(ns_name "$name") exists but is not recorded in $STATE (run down first)"
        names+=("$name") ips+=("$ip") newips+="$ip "
    done
    [ ${#names[@]} -gt 0 ] || { write_hosts_tsv; write_ssh_config; return 0; }

    mkdir -p "$(hosts_dir)"
    ensure_controller_key
    make_template

    # Indexes (for veth names) continue after the existing hosts. The host dirs exist before
    # the IPs are claimed: a claim whose netns and host dir are both gone is stale.
    local next=1 f n i
    for f in "$(hosts_dir)"/*/index; do
        [ -f "$f" ] || continue
        n=$(<"$f"); [ "$n" -lt "$next" ] || next=$((n + 1))
    done
    [ $((next + ${#names[@]})) -le 1000 ] || die "too many hosts in one sandbox"
    for i in "${!names[@]}"; do
        mkdir -p "$(hosts_dir)/${names[$i]}"
        echo "${ips[$i]}" >"$(hosts_dir)/${names[$i]}/ip"
        echo $((next + i)) >"$(hosts_dir)/${names[$i]}/index"
    done

    # Claim the IPs and the bridge under the global lock.
    global_lock
    local owner ostate conflict=
    conflict=$(check_subnet_free) || true
    for i in "${!names[@]}"; do
        [ -z "$conflict" ] || break
        ip=${ips[$i]}
        if [ -f "$RUNDIR/ips/$ip" ]; then
            owner='' ostate=''
            read -r owner ostate <"$RUNDIR/ips/$ip" || true
            if [ -e "/run/netns/$owner" ] || { [ -n "$ostate" ] && [ -d "$ostate/hosts/${owner#infra-*-}" ]; }; then
                conflict="IP $ip is already used by netns $owner ($ostate)"
            fi
        fi
    done
    if [ -n "$conflict" ]; then
        global_unlock
        for i in "${!names[@]}"; do rm -rf --one-file-system "${STATE:?}/hosts/${names[$i]}"; done
        die "$conflict"
    fi
    if [ ! -f "$STATE/sandbox.env" ]; then
        printf 'SUBNET=%s\nPREFIX=%s\nBRIDGE=%s\n' "$SUBNET" "$PREFIX" "$BRIDGE" >"$STATE/sandbox.env"
    fi
    for i in "${!names[@]}"; do
        printf '%s %s\n' "$(ns_name "${names[$i]}")" "$STATE" >"$RUNDIR/ips/${ips[$i]}"
    done
    ensure_bridge
    global_unlock
    write_hosts_tsv

    local timeout=${INFRA_SANDBOX_TIMEOUT:-60}
    local deadline=$(( t0 + timeout * 1000 ))
    # Create the hosts, a few at a time.
    local par=$(( $(nproc) * 2 )) pids=() failed=0 p
    for i in "${!names[@]}"; do
        create_host "${names[$i]}" "${ips[$i]}" $((next + i)) "$deadline" \
            >"$(hosts_dir)/${names[$i]}/create.log" 2>&1 &
        pids+=($!)
        if [ ${#pids[@]} -ge "$par" ]; then
            wait "${pids[0]}" || failed=1
            pids=("${pids[@]:1}")
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    if [ $failed = 1 ]; then
        for name in "${names[@]}"; do
            if [ -s "$(hosts_dir)/$name/create.log" ]; then
                warn "creating $name failed:"; sed 's/^/    /' "$(hosts_dir)/$name/create.log" >&2
            fi
        done
        write_hosts_tsv
        die "up failed; run: $0 down $STATE"
    fi

    # Known host keys are the ones we generated: no trust-on-first-use, and a wrong host
    # answering on the address is caught.
    local lines=""
    for i in "${!names[@]}"; do lines+=$(known_lines "${names[$i]}" "${ips[$i]}")$'\n'; done
    touch "$STATE/known_hosts"
    { awk -v drop="$newips" 'index(drop, " " $1 " ") == 0' "$STATE/known_hosts"; printf '%s' "$lines"; } \
        >"$STATE/known_hosts.tmp"
    mv -f "$STATE/known_hosts.tmp" "$STATE/known_hosts"

    write_hosts_tsv
    write_ssh_config

    pids=()
    for name in "${names[@]}"; do
        wait_login "$name" "$deadline" &
        pids+=($!)
    done
    failed=()
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
    if [ ${#failed[@]} -gt 0 ]; then
        for name in "${failed[@]}"; do
            warn "$name: no ssh login within ${timeout}s: $(tail -n 3 "$(hosts_dir)/$name/login-error" 2>/dev/null | tr '\n' ' ')"
            warn "$name: host log:"; tail -n 20 "$(hosts_dir)/$name/log" 2>/dev/null | sed 's/^/    /' >&2 || true
        done
        die "${#failed[@]} host(s) not reachable over ssh: ${failed[*]}; run: $0 down $STATE"
    fi
    printf 'sandbox: %d host(s) up in %d ms (%s)\n' "${#names[@]}" $(( $(now_ms) - t0 )) "$STATE" >&2
}

# ---------------------------------------------------------------- down
kill_ns_procs() {
    local ns=$1 pids
    for _ in $(seq 1 100); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.05
    done
    warn "processes still in netns $ns: $pids"
    return 1
}

cmd_down() {
    need_root
    load_state "${1:-}"
    [ -d "$STATE" ] || [ -n "$(ip netns list 2>/dev/null | grep "^infra-$SID-" || true)" ] || return 0
    state_lock
    local rc=0 name ns pid hd list pid_list=()

    # 1. SIGKILL each recorded PID 1 (only if it really is in that host's netns).
    if [ -d "$(hosts_dir)" ]; then
        for hd in "$(hosts_dir)"/*/; do
            [ -d "$hd" ] || continue
            name=$(basename "$hd")
            ns=$(ns_name "$name")
            pid=$(host_pid1 "$name" || true)
            if pid_in_ns "$pid" "$ns"; then
                kill -KILL "$pid" 2>/dev/null || true
                pid_list+=("$pid")
            fi
        done
    fi
    for pid in "${pid_list[@]}"; do
        for _ in $(seq 1 100); do [ -e "/proc/$pid" ] || break; sleep 0.02; done
    done

    # 2. Anything else left in our netns (a partial up, an exec in flight), then the netns.
    list=$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^infra-$SID-" || true)
    for ns in $list; do
        kill_ns_procs "$ns" || rc=1
        ip netns delete "$ns" 2>/dev/null || { warn "cannot delete netns $ns"; rc=1; }
    done

    # 3. Our veths (normally gone with the netns), the IP registry, the bridge if unused.
    for name in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^iv$SID-" || true); do
        ip link delete "$name" 2>/dev/null || true
    done
    global_lock
    local f owner st
    for f in "$RUNDIR"/ips/*; do
        [ -f "$f" ] || continue
        read -r owner st <"$f" || true
        [ "$st" != "$STATE" ] || rm -f "$f"
    done
    if [ -n "$BRIDGE" ] && ip link show dev "$BRIDGE" >/dev/null 2>&1; then
        if [ -z "$(ip -o link show master "$BRIDGE" 2>/dev/null)" ]; then
            remove_bridge || rc=1
        fi
    fi
    global_unlock

    # 4. Mounts: the hosts' mounts died with their mount namespaces; sweep any under STATE.
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$STATE/" | sort -r || true); do
        umount -l "$m" 2>/dev/null || { warn "cannot unmount $m"; rc=1; }
    done

    # 5. Files.
    rm -rf --one-file-system "$(hosts_dir)" "$STATE/template" "$STATE/hosts.tsv" "$STATE/hosts.tsv.tmp" \
        "$STATE/ssh_config" "$STATE/known_hosts" "$STATE/known_hosts.tmp" "$STATE/sandbox.env" || rc=1
    return $rc
}

# ---------------------------------------------------------------- exec, rekey, firewall
cmd_exec() {
    need_root
    load_state "${1:-}"
    local name=${2:-}
    [ -n "$name" ] && [ "${3:-}" = "--" ] && [ $# -ge 4 ] || die "usage: sandbox.sh exec STATE NAME -- CMD..."
    shift 3
    local pid; pid=$(live_pid1 "$name")
    close_fds
    exec nsenter -t "$pid" -m -p -n -u -i -r -w -- \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# Waits until IP:22 answers with an SSH banner.
wait_banner() {
    local ip=$1 deadline=$2 banner
    while :; do
        banner=$(timeout 2 bash -c 'exec 3<>/dev/tcp/$0/22 && head -c 7 <&3' "$ip" 2>/dev/null || true)
        [ "$banner" = "SSH-2.0" ] && return 0
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

cmd_rekey() {
    need_root
    load_state "${1:-}"
    local name=${2:-}
    [ -n "$name" ] || die "usage: sandbox.sh rekey STATE NAME"
    state_lock
    local pid ip; pid=$(live_pid1 "$name"); ip=$(cat "$(hosts_dir)/$name/ip")
    ( cmd_exec "$STATE" "$name" -- sh -c '
        set -e
        rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub \
              /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub
        ssh-keygen -q -t ed25519 -N "" -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
        ssh-keygen -q -t ecdsa -N "" -C "root@$(hostname)" -f /etc/ssh/ssh_host_ecdsa_key
        /etc/init.d/ssh restart >/dev/null' ) ||
        die "rekey of $name failed"
    wait_banner "$ip" $(( $(now_ms) + 20000 )) || die "$name: sshd did not come back after rekey"
    # The new keys as known_hosts lines, for callers that want to accept them.
    known_lines "$name" "$ip"
}

cmd_firewall() {
    need_root
    need_tools nft
    load_state "${1:-}"
    local name=${2:-} allow=${3:-} action=${4:-drop}
    [ -n "$name" ] && [ -n "$allow" ] || die "usage: sandbox.sh firewall STATE NAME ALLOW_IP|off [drop|reject]"
    live_pid1 "$name" >/dev/null
    local ns; ns=$(ns_name "$name")
    local verdict
    case $action in
        drop) verdict=drop;;
        reject) verdict="reject with tcp reset";;
        *) die "firewall action must be drop or reject";;
    esac
    if [ "$allow" = off ]; then
        nsenter --net="/run/netns/$ns" nft -f - <<'EOF'
table inet infra_sandbox
delete table inet infra_sandbox
EOF
        return 0
    fi
    [[ $allow =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "ALLOW_IP must be an IPv4 address or 'off'"
    nsenter --net="/run/netns/$ns" nft -f - <<EOF
table inet infra_sandbox
delete table inet infra_sandbox
table inet infra_sandbox {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "lo" accept
        tcp dport 22 ip saddr != $allow $verdict
        tcp dport 22 meta nfproto ipv6 $verdict
    }
}
EOF
}

# ---------------------------------------------------------------- setup
cmd_setup() {
    need_root
    local cache=()
    while [ $# -gt 0 ]; do
        case $1 in
            --cache) shift; cache+=("$@"); break;;
            *) die "usage: sandbox.sh setup [--cache PKG...]";;
        esac
    done
    local pkgs=(tini iproute2 openssh-server openssh-client nftables util-linux attr procps curl
                init-system-helpers sysvinit-utils)
    export DEBIAN_FRONTEND=noninteractive

    # apt without the image's docker-clean hook, which deletes /var/cache/apt/archives/*.deb
    # after every dpkg run and every update: the debs we fetch must stay for the hosts.
    local tmp; tmp=$(mktemp -d)
    SETUP_TMP=$tmp SETUP_POLICY=0
    trap 'rm -rf "$SETUP_TMP"; [ "$SETUP_POLICY" = 0 ] || rm -f /usr/sbin/policy-rc.d' EXIT
    mkdir "$tmp/parts"
    local f
    for f in /etc/apt/apt.conf.d/*; do
        [ -e "$f" ] && [ "$(basename "$f")" != docker-clean ] && ln -s "$f" "$tmp/parts/"
    done
    cat >"$tmp/apt.conf" <<EOF
Dir::Etc::parts "$tmp/parts";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Keep-Downloaded-Packages "true";
EOF
    export APT_CONFIG=$tmp/apt.conf
    local aptopts=(-y -q --no-install-recommends -o APT::Keep-Downloaded-Packages=true)

    # No service may start on the main machine: keep the image's policy-rc.d, or add one.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        SETUP_POLICY=1
    fi

    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ] || [ ${#cache[@]} -gt 0 ]; then
        if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
            apt-get -q update
        fi
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "sandbox: installing ${missing[*]}" >&2
        apt-get install "${aptopts[@]}" "${missing[@]}"
    fi
    if [ ${#cache[@]} -gt 0 ]; then
        echo "sandbox: downloading into /var/cache/apt/archives: ${cache[*]}" >&2
        # Packages that conflict (postfix, exim4) cannot be resolved together: then one at a time.
        if ! apt-get install -d --reinstall "${aptopts[@]}" "${cache[@]}" 2>/dev/null; then
            for p in "${cache[@]}"; do
                apt-get install -d --reinstall "${aptopts[@]}" "$p" >/dev/null ||
                    die "cannot download $p into the apt cache"
            done
        fi
    fi
    modprobe nf_tables 2>/dev/null || true
    echo "sandbox: setup done" >&2
}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
        setup) cmd_setup "$@";;
        up) cmd_up "$@";;
        down) cmd_down "$@";;
        exec) cmd_exec "$@";;
        rekey) cmd_rekey "$@";;
        firewall) cmd_firewall "$@";;
        -h|--help|help) usage;;
        *) usage;;
    esac
}

main "$@"
