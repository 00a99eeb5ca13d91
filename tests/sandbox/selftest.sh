#!/usr/bin/env bash
# Self-test of tests/sandbox/sandbox.sh: brings up 3 hosts (plus a 4th, and a second sandbox)
# in temp STATE dirs, checks isolation, ssh, exec, rekey, firewall, then down and no leftovers.
# Run as root after `sandbox.sh setup`. Prints "N passed, M failed"; exit status 1 on failure.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SB=$HERE/sandbox.sh
SUBNET=${INFRA_SANDBOX_SUBNET:-10.213.0.0/24}
P=${SUBNET%.0/24}
BR=ib-${P//./-}
# Other sandboxes may share the subnet: take addresses nobody has claimed (from .100 up).
used=" $(ls /run/infra-sandbox/ips 2>/dev/null | tr '\n' ' ') "
FREE=()
for n in $(seq 100 254); do
    case $used in *" $P.$n "*) continue;; esac
    FREE+=("$P.$n")
    [ ${#FREE[@]} -lt 9 ] || break
done
[ ${#FREE[@]} = 9 ] || { echo "selftest: not enough free addresses in $SUBNET"; exit 1; }
IPA=${FREE[0]} IPB=${FREE[1]} IPC=${FREE[2]} IPD=${FREE[3]} IPX=${FREE[4]} IPP=("${FREE[@]:5:4}")

STATE=$(mktemp -d /tmp/infra-sandbox-selftest.XXXXXX)
STATE2=$(mktemp -d /tmp/infra-sandbox-selftest2.XXXXXX)
STATE3=$(mktemp -d /tmp/infra-sandbox-selftest3.XXXXXX)
cleanup() {
    "$SB" down "$STATE" >/dev/null 2>&1
    "$SB" down "$STATE2" >/dev/null 2>&1
    "$SB" down "$STATE3" >/dev/null 2>&1
    rm -rf "$STATE" "$STATE2" "$STATE3"
}
trap cleanup EXIT

pass=0 failed=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [ -z "${2:-}" ] || printf '     %s\n' "$2"; }
# check DESCRIPTION CMD...: passes when CMD succeeds.
check() { local d=$1; shift; local out; if out=$("$@" 2>&1); then ok "$d"; else bad "$d" "$(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi; }
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "expected [$2], got [$3]"; fi; }

ssh_() { ssh -F "$STATE/ssh_config" "$@" </dev/null; }

# ------------------------------------------------------------------ up
t0=$(date +%s%N)
if "$SB" up "$STATE" a="$IPA" b="$IPB" c="$IPC"; then
    ok "up 3 hosts ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
    bad "up 3 hosts"
    echo "$pass passed, $((failed)) failed"
    exit 1
fi
SID=$(awk -F'\t' 'NR==1 {print $4}' "$STATE/hosts.tsv" | sed -E 's/^infra-([0-9a-f]+)-.*/\1/')
check_eq "hosts.tsv has 3 rows of 4 fields" "3 4" "$(wc -l <"$STATE/hosts.tsv") $(awk -F'\t' '{print NF}' "$STATE/hosts.tsv" | sort -u)"
check "ssh_config has the required options" grep -q "KexAlgorithms curve25519-sha256" "$STATE/ssh_config"

for h in a b c; do
    check_eq "hostname of $h over ssh" "$h" "$(ssh_ "$h" hostname)"
done
check_eq "PID 1 is tini" "tini" "$(ssh_ a 'cat /proc/1/comm')"
check "sshd listens on the host address" ssh_ a "ss -Hltn | grep -qE '(0\.0\.0\.0|$IPA):22 '"

# ------------------------------------------------------------------ isolation
ssh_ a 'echo from-a >/root/only-on-a && echo from-a >/etc/only-on-a && echo x >/var/tmp/only-on-a'
check "file written on a is there on a" ssh_ a 'test -f /root/only-on-a && test -f /etc/only-on-a'
check "file written on a is invisible on b" ssh_ b 'test ! -e /root/only-on-a && test ! -e /etc/only-on-a && test ! -e /var/tmp/only-on-a'
check "file written on a is invisible on the main machine" test ! -e /root/only-on-a -a ! -e /etc/only-on-a -a ! -e /var/tmp/only-on-a
check "controller key and STATE are hidden" ssh_ a "test ! -e $STATE/id_ed25519 && test -z \"\$(ls -A $STATE 2>/dev/null)\""
check "repo checkout is hidden" ssh_ a "test -z \"\$(ls -A $REPO)\""
check "/tmp is private" ssh_ a 'test -z "$(ls -A /tmp)"'
check "/root is stock Debian (no pyenv)" ssh_ a '! grep -qi pyenv /root/.bashrc /root/.profile && test ! -e /root/.pyenv && cmp -s /root/.bashrc /usr/share/base-files/dot.bashrc'
check "/root keeps the real mode (StrictModes)" test "$(ssh_ a 'stat -c %a /root')" = "$(stat -c %a /root)"
check "no systemd, runlevel N 2, no policy-rc.d, no docker-clean" ssh_ a \
    'test ! -e /run/systemd/system && test "$(runlevel)" = "N 2" && test ! -e /usr/sbin/policy-rc.d && test ! -e /etc/apt/apt.conf.d/docker-clean'
check "own host keys per host" test "$(ssh_ a 'cat /etc/ssh/ssh_host_ed25519_key.pub')" != "$(ssh_ b 'cat /etc/ssh/ssh_host_ed25519_key.pub')"
check "host keys differ from the main machine's" test "$(ssh_ a 'cut -d" " -f2 /etc/ssh/ssh_host_ed25519_key.pub')" != "$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub)"
check "hostname of main machine unchanged" test "$(hostname)" != a

# ------------------------------------------------------------------ network
tcp_err() { # HOST IP PORT: the error of a TCP connect from HOST, or "connected"
    ssh_ "$1" "timeout 3 bash -c 'exec 3<>/dev/tcp/$2/$3' 2>&1 && echo connected" | tr -d '\n'
}
check "a reaches b (sshd banner)" ssh_ a "timeout 3 bash -c 'exec 3<>/dev/tcp/$IPB/22; head -c 7 <&3' | grep -q SSH-2.0"
check "a reaches the bridge address (RST = reachable)" grep -q "Connection refused" <<<"$(tcp_err a "$P.1" 9)"
check "a has no route out" grep -q "Network is unreachable" <<<"$(tcp_err a 192.0.2.1 80)"
check "a has only the subnet route" test "$(ssh_ a 'ip -4 route | wc -l')" = 1
check "ssh via ProxyJump a -> b" test "$(ssh -F "$STATE/ssh_config" -J a b hostname </dev/null)" = b

# ------------------------------------------------------------------ services
if command -v nginx >/dev/null; then
    check "service nginx start on a" ssh_ a 'service nginx start'
    check_eq "controller curls nginx on a" 200 "$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://$IPA/")"
    check "b curls nginx on a" ssh_ b "curl -sSf -m 5 -o /dev/null http://$IPA/"
    check "exec: ps -o lstart= -C nginx on a" test -n "$("$SB" exec "$STATE" a -- ps -o lstart= -C nginx)"
    check "nginx not running on b" bash -c "! '$SB' exec '$STATE' b -- ps -C nginx >/dev/null"
    check "nginx pid file private to a" bash -c "! '$SB' exec '$STATE' b -- test -s /run/nginx.pid"
    out=$(timeout 20 "$SB" exec "$STATE" a -- service nginx restart); rc=$?
    check_eq "exec of a daemon restart returns (no fd held)" 0 "$rc"
else
    echo "skip nginx checks: nginx is not installed on the main machine"
fi

# ------------------------------------------------------------------ exec
check_eq "exec: cat /etc/hostname on b" b "$("$SB" exec "$STATE" b -- cat /etc/hostname)"
echo hello-b | "$SB" exec "$STATE" b -- sh -c 'cat >/root/from-stdin'
check_eq "exec: stdin reaches the host" hello-b "$(ssh_ b 'cat /root/from-stdin')"
"$SB" exec "$STATE" b -- sh -c 'exit 3'; rc=$?
check_eq "exec: exit status propagates" 3 "$rc"
check_eq "exec: in the host's pid namespace" 1 "$("$SB" exec "$STATE" b -- sh -c 'ps -o pid= -C tini | tr -d " "')"
check "exec: unknown host fails" bash -c "! '$SB' exec '$STATE' nope -- true 2>/dev/null"

# ------------------------------------------------------------------ rekey (c)
cp "$STATE/known_hosts" "$STATE/known_hosts.old"
new=$("$SB" rekey "$STATE" c); rc=$?
check_eq "rekey c" 0 "$rc"
err=$(ssh -F "$STATE/ssh_config" -o UserKnownHostsFile="$STATE/known_hosts.old" c true 2>&1 </dev/null); rc=$?
check "ssh with the old known_hosts fails with a host key error" \
    test "$rc" = 255 -a -n "$(grep -E 'REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed' <<<"$err")"
printf '%s\n' "$new" >"$STATE/known_hosts.new"
check_eq "ssh with the new keys from rekey's output works" c \
    "$(ssh -F "$STATE/ssh_config" -o UserKnownHostsFile="$STATE/known_hosts.new" -o StrictHostKeyChecking=yes c hostname </dev/null)"

# ------------------------------------------------------------------ firewall (b allows only a)
check "firewall b allows only a" "$SB" firewall "$STATE" b "$IPA"
err=$(ssh -F "$STATE/ssh_config" -o ConnectTimeout=2 b true 2>&1 </dev/null); rc=$?
check "controller -> b is dropped (timeout)" test "$rc" = 255 -a -n "$(grep -i 'timed out' <<<"$err")"
check_eq "controller -> a -> b works (ProxyJump)" b "$(ssh -F "$STATE/ssh_config" -J a b hostname </dev/null)"
check "firewall b reject mode" "$SB" firewall "$STATE" b "$IPA" reject
err=$(ssh -F "$STATE/ssh_config" -o ConnectTimeout=2 b true 2>&1 </dev/null)
check "controller -> b is refused" grep -q "Connection refused" <<<"$err"
check "firewall b off" "$SB" firewall "$STATE" b off
check_eq "controller -> b works again" b "$(ssh_ b hostname)"
check "firewall off is idempotent" "$SB" firewall "$STATE" b off

# ------------------------------------------------------------------ up again, second sandbox
check "up again adds d" "$SB" up "$STATE" d="$IPD"
check_eq "hosts.tsv has 4 rows" 4 "$(wc -l <"$STATE/hosts.tsv")"
check_eq "d answers" d "$(ssh_ d hostname)"
check_eq "a still answers" a "$(ssh_ a hostname)"
check "up refuses a name that exists" bash -c "! '$SB' up '$STATE' a=$IPX 2>/dev/null"
check "second sandbox refuses an IP in use" bash -c "! '$SB' up '$STATE2' y=$IPA 2>/dev/null"
check "up refuses an IP outside the subnet" bash -c "! '$SB' up '$STATE2' y=192.0.2.77 2>/dev/null"
check "second sandbox on the same subnet" "$SB" up "$STATE2" x="$IPX"
SID2=$(awk -F'\t' 'NR==1 {print $4}' "$STATE2/hosts.tsv" | sed -E 's/^infra-([0-9a-f]+)-.*/\1/')
check "the two sandboxes have different ids" test "$SID" != "$SID2"
check_eq "x reaches a across sandboxes" SSH-2.0 "$(ssh -F "$STATE2/ssh_config" x "timeout 3 bash -c 'exec 3<>/dev/tcp/$IPA/22; head -c 7 <&3'" </dev/null)"

# ------------------------------------------------------------------ down
pids=$(cut -f3 "$STATE/hosts.tsv")
check "down" "$SB" down "$STATE"
check "down again (idempotent)" "$SB" down "$STATE"
check "no netns left" bash -c "! ip netns list | grep -q '^infra-$SID-'"
check "no veth left" bash -c "! ip -o link | grep -q 'iv$SID-'"
check "no mount of STATE left (any mount namespace)" bash -c "! grep -lF '$STATE/' /proc/[0-9]*/mountinfo 2>/dev/null | grep -q ."
check "no process left" bash -c "for p in $(echo $pids); do ! test -e /proc/\$p || exit 1; done"
check "no process with STATE files open" bash -c "! ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF '$STATE/'"
check "host dirs removed" test ! -e "$STATE/hosts" -a ! -e "$STATE/hosts.tsv"
check "bridge kept while the second sandbox uses it" ip link show dev "$BR"
check_eq "second sandbox still answers" x "$(ssh -F "$STATE2/ssh_config" x hostname </dev/null)"
check "down second sandbox" "$SB" down "$STATE2"
# The bridge (and its forward guard) goes with the last sandbox on it: other sandboxes on this
# machine may still use it.
bridge_gone_or_used() {
    ! ip link show dev "$BR" >/dev/null 2>&1 || [ -n "$(ip -o link show master "$BR")" ]
}
check "bridge removed unless another sandbox uses it" bridge_gone_or_used
if ! ip link show dev "$BR" >/dev/null 2>&1; then
    check "forward guard removed with the bridge" bash -c "! nft list tables 2>/dev/null | grep -qw 'infra_sandbox_${P//./_}'"
fi

# ------------------------------------------------------------------ partial up, then down
"$SB" up "$STATE3" p1="${IPP[0]}" p2="${IPP[1]}" p3="${IPP[2]}" p4="${IPP[3]}" >/dev/null 2>&1 &
upid=$!
sleep 0.4
kill -KILL "$upid" 2>/dev/null; wait "$upid" 2>/dev/null
SID3=$(printf '%s' "$(realpath "$STATE3")" | sha1sum | cut -c1-6)
check "down after a killed up" "$SB" down "$STATE3"
check "no netns left after partial up" bash -c "! ip netns list | grep -q '^infra-$SID3-'"
check "no veth left after partial up" bash -c "! ip -o link | grep -q 'iv$SID3-'"
# [x] trick: the pattern does not match grep's own command line.
pat="${STATE3:0:1}[${STATE3:1:1}]${STATE3:2}/"
check_eq "no process left after partial up" "" "$(grep -l -- "$pat" /proc/[0-9]*/mountinfo /proc/[0-9]*/cmdline 2>/dev/null)"
check "no bridge left after partial up (unless in use)" bridge_gone_or_used

echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
