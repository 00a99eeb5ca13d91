#!/usr/bin/env bash
# Times `infra plan` and `infra apply` against N local sandbox hosts (tests/sandbox/sandbox.sh)
# and compares them with the floor: one fresh ssh login per host, all hosts at once, running one
# command that hashes and stats the same 25 files. A benchmark, not a test.
#
# Usage: bench/plan-apply.sh [N...]            (default: 10 50; as root)
#
# For each N it brings up N hosts in INFRA_BENCH_SUBNET (default 10.213.90.0/24, no jump host),
# writes a small site (role `web`: 24 files under /etc/bench, an nginx site in /etc/nginx/conf.d
# that notifies nginx and is checked with `nginx -t`, package nginx, service nginx), applies it
# once (timed once, reported), then runs hyperfine (--warmup 1, --runs $RUNS) on:
#   1. plan, nothing to change               2. apply --yes, nothing to change
#   3. the floor: N parallel fresh ssh logins, each `sha256sum` + `stat` of the 25 files
#   4. apply --yes --var web.tag=a|b (alternating): one file changes on every host, nginx reloads
# infra runs with --parallel N (its default is 32), the floor with N parallel logins. Remote
# commands per host come from infra's `note:` line; SSH logins per host are the TCP connections
# to port 22 that one run opens (strace). With a cpuacct cgroup (v1) or cgroup v2, it also
# measures CPU per host, controller side and hosts side: on a small machine the runs are
# CPU-bound, so that is where the time goes.
# The tables go to stdout and to bench/results-plan-apply.md ($OUT).
#
# Environment:
#   RUNS                 hyperfine runs per command (default 5)
#   INFRA_BENCH_SUBNET   the sandbox /24 (default 10.213.90.0/24)
#   INFRA_BENCH_DIR      work dir (default /tmp/infra-bench-plan-apply); cleaned at start, the
#                        sandbox in it is torn down on exit, failure or interrupt
#   INFRA_BIN            use this binary instead of `cargo build --release`
#   OUT                  results file (default bench/results-plan-apply.md)
#   CPU                  0 to skip the CPU table (default 1 when cgroups allow it)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
sandbox=$repo/tests/sandbox/sandbox.sh
runs=${RUNS:-5}
subnet=${INFRA_BENCH_SUBNET:-10.213.90.0/24}
base=${INFRA_BENCH_DIR:-/tmp/infra-bench-plan-apply}
out=${OUT:-$repo/bench/results-plan-apply.md}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 50)

die() { printf 'bench/plan-apply.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }

# ------------------------------------------------------------------ checks
[ "$(id -u)" = 0 ] || die "must run as root (the sandbox hosts are namespaces)"
[ -x "$sandbox" ] || die "missing $sandbox"
[[ $subnet =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] ||
  die "INFRA_BENCH_SUBNET must look like a.b.c.0/24, got '$subnet'"
prefix=${BASH_REMATCH[1]}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
for n in "${sizes[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 240 ] || die "N must be an integer from 1 to 240, got '$n'"
done
dpkg-query -W -f='${db:Status-Abbrev}' nginx 2>/dev/null | grep -q '^ii' ||
  die "nginx is not installed on this machine (the hosts share its root filesystem): apt-get install nginx"
for t in ssh jq xargs awk flock strace; do
  command -v "$t" >/dev/null || die "missing tool: $t (apt-get install $(case $t in xargs) echo findutils;; awk) echo gawk;; flock) echo util-linux;; ssh) echo openssh-client;; *) echo "$t";; esac))"
done
if ! command -v hyperfine >/dev/null; then
  # Before any host is up: the hosts' lower layer is this machine's live root.
  log "installing hyperfine"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hyperfine >/dev/null ||
    die "hyperfine is not installed and 'apt-get install hyperfine' failed"
fi

# ------------------------------------------------------------------ work dir, lock, teardown
mkdir -p "$base"
exec 9>"$base/lock"
flock -n 9 || die "another bench/plan-apply.sh is running (lock $base/lock)"
state=$base/state
cg_hosts='' cg_ctl='' cg_kind='' child=''
# Long steps run in the background and are waited for, so that a TERM is handled at once.
run_waited() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=''
  return "$rc"
}
teardown() {
  local rc=$? i
  trap - EXIT INT TERM
  [ -z "$child" ] || kill "$child" 2>/dev/null || true
  if [ -d "$state" ]; then
    "$sandbox" down "$state" >/dev/null 2>&1 || echo "bench/plan-apply.sh: 'sandbox.sh down $state' failed" >&2
  fi
  for i in 1 2 3 4 5; do
    [ -n "$cg_hosts$cg_ctl" ] || break
    rmdir "$cg_hosts" "$cg_ctl" 2>/dev/null || true
    [ -d "$cg_hosts" ] || [ -d "$cg_ctl" ] || break
    sleep 0.2
  done
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A run killed with SIGKILL leaves hosts behind: `down` is idempotent and finds them from STATE.
"$sandbox" down "$state" >/dev/null 2>&1 || true
rm -rf "${base:?}/site" "${base:?}/runs" "${base:?}/bin"
mkdir -p "$state" "$base/site" "$base/runs" "$base/bin"

# ------------------------------------------------------------------ CPU accounting (optional)
# Two cgroups: the hosts (sandbox.sh up runs in it, so every sshd and session inherits it) and
# the controller (each measured command, with the ssh masters it daemonizes).
if [ "${CPU:-1}" != 0 ]; then
  if [ -d /sys/fs/cgroup/cpuacct ] && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
    cg_kind=v1 cg_hosts=/sys/fs/cgroup/cpuacct/infra-bench-pa-hosts cg_ctl=/sys/fs/cgroup/cpuacct/infra-bench-pa-ctl
  elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cg_kind=v2 cg_hosts=/sys/fs/cgroup/infra-bench-pa-hosts cg_ctl=/sys/fs/cgroup/infra-bench-pa-ctl
  fi
  if [ -n "$cg_kind" ] && ! mkdir -p "$cg_hosts" "$cg_ctl" 2>/dev/null; then
    log "cannot create cgroups under ${cg_hosts%/*}: no CPU table"
    cg_kind='' cg_hosts='' cg_ctl=''
  fi
  [ -n "$cg_kind" ] || log "no usable cgroup for CPU accounting: no CPU table"
fi
cg_ns() {  # CPU time used in cgroup $1 so far, in ns
  case $cg_kind in
    v1) cat "$1/cpuacct.usage" ;;
    v2) awk '$1 == "usage_usec" { print $2 * 1000 }' "$1/cpu.stat" ;;
  esac
}

# ------------------------------------------------------------------ binary
# A private copy: others may rebuild target/release/infra while this runs.
if [ -n "${INFRA_BIN:-}" ]; then
  [ -x "$INFRA_BIN" ] || die "INFRA_BIN=$INFRA_BIN is not executable"
  cp "$INFRA_BIN" "$base/bin/infra"
else
  command -v cargo >/dev/null || die "cargo is not installed (or set INFRA_BIN to a built infra)"
  log "cargo build --release"
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" || die "cargo build --release failed"
  cp "$repo/target/release/infra" "$base/bin/infra"
fi
infra=$base/bin/infra

# ------------------------------------------------------------------ the site
site=$base/site
files=()
for i in $(seq -w 1 24); do files+=("/etc/bench/file$i.conf"); done
files+=("/etc/nginx/conf.d/bench.conf")
host_name() { printf 'h%03d' $(( $1 + 1 )); }
host_ip() { printf '%s.%d' "$prefix" $(( $1 + 10 )); }

write_site() {
  local n=$1 i
  rm -rf "$site"
  mkdir -p "$site/roles" "$site/templates/bench" "$site/inventories"
  {
    echo "name: web"
    echo "description: benchmark role, 24 config files and an nginx site"
    echo "packages: [nginx]"
    echo "dirs:"
    echo "  - {path: /etc/bench, mode: \"0755\"}"
    echo "files:"
    for i in $(seq -w 1 24); do
      echo "  - {template: bench/file.conf.j2, dest: /etc/bench/file$i.conf, vars: {n: \"$i\"}}"
    done
    echo "  - {template: bench/nginx-site.conf.j2, dest: /etc/nginx/conf.d/bench.conf, notify: [nginx], check: \"nginx -t\"}"
    echo "services:"
    echo "  - {name: nginx, enable: true, on_change: reload, check: \"nginx -t\"}"
    echo "defaults:"
    echo "  web: {tag: base, setting: 42}"
  } > "$site/roles/web.yaml"
  cat > "$site/templates/bench/file.conf.j2" <<'EOF'
# Managed by infra (benchmark): file {{ vars.n }} on {{ host.name }}
[bench]
name = file{{ vars.n }}
host = {{ host.name }}
address = {{ host.address }}
setting = {{ vars.web.setting }}
{% for k in range(end=16) %}key{{ k }} = value-{{ vars.n }}-{{ k }}
{% endfor %}
EOF
  cat > "$site/templates/bench/nginx-site.conf.j2" <<'EOF'
# Managed by infra (benchmark).
server {
    listen 8081;
    server_name bench;
    add_header X-Bench-Tag "{{ vars.web.tag }}";
    location / { return 200 "bench {{ host.name }}\n"; }
}
EOF
  {
    echo "environment: bench"
    echo "domain: bench.test"
    echo "internal_domain: bench.internal"
    echo "provider: {type: static}"
    echo "ssh:"
    echo "  user: root"
    echo "  identity_file: $state/id_ed25519"
    echo "  known_hosts_file: $state/known_hosts_bench"
    echo "  options: {KexAlgorithms: curve25519-sha256}"
    echo "hosts:"
    for ((i = 0; i < n; i++)); do
      printf '  %s: {roles: [web], address: %s}\n' "$(host_name "$i")" "$(host_ip "$i")"
    done
  } > "$site/inventories/bench.yaml"
}

# ------------------------------------------------------------------ helpers
# "note: N hosts planned with M remote commands after login" -> M
note_commands() {
  sed -n 's/^note: [0-9]* hosts planned with \([0-9]*\) remote commands after login$/\1/p' "$1" | tail -n 1
}
# Runs "$@" under strace; prints "LOGINS SSH_PROCESSES": TCP connections to port 22 and
# processes that exec'd ssh.
count_logins() {
  local trace=$1; shift
  strace -f -qq -e trace=execve,connect -e signal=none -s 64 -o "$trace" "$@" > /dev/null 2>&1 ||
    die "'$*' failed under strace"
  printf '%s %s\n' \
    "$(grep -c 'sin_port=htons(22)' "$trace" || true)" \
    "$(awk '/execve\("[^"]*\/ssh", / { p[$1] = 1 } END { print length(p) }' "$trace")"
}
# Applies the site without --var (web.tag=base) and checks that plan --detailed-exitcode then
# exits 0; the next change run alternates from base again.
converge() {
  local n=$1 run=$2 rc=0
  rm -f "$run/tag"
  "$infra" -C "$site" apply bench --yes --parallel "$n" > "$run/converge.out" 2>&1 ||
    { tail -n 40 "$run/converge.out" >&2; die "apply (back to web.tag=base) failed (N=$n)"; }
  "$infra" -C "$site" plan bench --detailed-exitcode --parallel "$n" > "$run/converge.out" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { tail -n 40 "$run/converge.out" >&2; die "plan --detailed-exitcode exited $rc after converging, not 0 (N=$n)"; }
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%g", a / b }'; }
# CPU of "$@" (3 runs, mean per host): controller ms, hosts ms.
cpu_per_host() {
  local n=$1 _ c0 c1 h0 h1 c=0 h=0; shift
  for _ in 1 2 3; do
    c0=$(cg_ns "$cg_ctl"); h0=$(cg_ns "$cg_hosts")
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_ctl" "$@" > /dev/null 2>&1 ||
      die "'$*' failed while measuring CPU"
    sleep 0.3  # ssh masters and sessions finish exiting
    c1=$(cg_ns "$cg_ctl"); h1=$(cg_ns "$cg_hosts")
    c=$((c + c1 - c0)); h=$((h + h1 - h0))
  done
  awk -v c="$c" -v h="$h" -v n="$n" 'BEGIN { printf "%.1f %.1f\n", c / 3e6 / n, h / 3e6 / n }'
}

loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit + uncommitted changes"
results=()   # timing rows
cpu_rows=()  # CPU rows
notes=()

bench_n() {
  local n=$1
  local i names=() specs=() run=$base/runs/n$n t0 t1 rc
  mkdir -p "$run"
  log "N=$n: sandbox up in $subnet"
  "$sandbox" down "$state" > /dev/null 2>&1 || true
  for ((i = 0; i < n; i++)); do
    names+=("$(host_name "$i")")
    specs+=("$(host_name "$i")=$(host_ip "$i")")
  done
  t0=$(date +%s%N)
  rc=0
  sandbox_up() {
    [ -z "$cg_hosts" ] || echo "$BASHPID" > "$cg_hosts/cgroup.procs"
    INFRA_SANDBOX_SUBNET=$subnet exec "$sandbox" up "$state" "$@" > "$run/up.log" 2>&1
  }
  run_waited sandbox_up "${specs[@]}" || rc=$?
  [ "$rc" = 0 ] || { cat "$run/up.log" >&2; die "sandbox up failed for N=$n (log above)"; }
  t1=$(date +%s%N)
  local up_ms=$(( (t1 - t0) / 1000000 ))
  log "N=$n: $n hosts up in $up_ms ms"
  cp "$state/known_hosts" "$state/known_hosts_bench"
  write_site "$n"
  "$infra" -C "$site" validate bench > /dev/null 2> "$run/validate.err" ||
    { cat "$run/validate.err" >&2; die "the generated site does not validate"; }

  # ---- first apply, timed once
  log "N=$n: first apply"
  t0=$(date +%s%N)
  "$infra" -C "$site" apply bench --yes --parallel "$n" > "$run/first-apply.out" 2> "$run/first-apply.err" ||
    { tail -n 40 "$run/first-apply.out" "$run/first-apply.err" >&2; die "first apply failed (N=$n)"; }
  t1=$(date +%s%N)
  local first_ms=$(( (t1 - t0) / 1000000 ))
  [ "$(grep -c ' changed=[1-9][0-9]* failed=0 unreachable=0$' "$run/first-apply.out")" = "$n" ] ||
    die "first apply did not change every host (see $run/first-apply.out)"
  local first_cmds; first_cmds=$(note_commands "$run/first-apply.err")

  # ---- nothing to change now: plan --detailed-exitcode must exit 0; no-op apply must pass
  rc=0
  "$infra" -C "$site" plan bench --detailed-exitcode --parallel "$n" > "$run/plan.out" 2> "$run/plan.err" || rc=$?
  [ "$rc" = 0 ] || { tail -n 40 "$run/plan.out" "$run/plan.err" >&2; die "plan --detailed-exitcode after the first apply exited $rc, not 0 (N=$n)"; }
  "$infra" -C "$site" apply bench --yes --parallel "$n" > "$run/apply.out" 2> "$run/apply.err" ||
    { tail -n 40 "$run/apply.out" "$run/apply.err" >&2; die "no-op apply failed (N=$n)"; }
  grep -q '^Recap:' "$run/apply.out" && die "the no-op apply applied something (see $run/apply.out)"
  local plan_cmds apply_cmds change_cmds
  plan_cmds=$(note_commands "$run/plan.err")
  apply_cmds=$(note_commands "$run/apply.err")
  [ -n "$plan_cmds" ] && [ -n "$apply_cmds" ] || die "no 'note: N hosts planned with M remote commands' line on stderr (see $run/plan.err)"

  # ---- the floor: one fresh login per host, all at once, hash + stat the 25 files
  local remote="sha256sum ${files[*]}; stat -c '%a %U %G %F %n' ${files[*]}"
  printf '%s\n' "${names[@]}" > "$run/hosts.txt"
  cat > "$run/floor.sh" <<EOF
#!/bin/sh
# One fresh ssh login per host (no ControlMaster), $n at once, each running one command.
exec xargs -P $n -I{} ssh -F $state/ssh_config -o KexAlgorithms=curve25519-sha256 -o BatchMode=yes \\
  -o ControlMaster=no -o ControlPath=none -o UserKnownHostsFile=$state/known_hosts_bench \\
  {} "$remote" < $run/hosts.txt
EOF
  chmod +x "$run/floor.sh"
  local lines
  lines=$("$run/floor.sh" | wc -l) || die "the floor command failed (N=$n): $run/floor.sh"
  [ "$lines" = $(( n * 50 )) ] || die "the floor command printed $lines lines, expected $(( n * 50 )) (N=$n)"

  # ---- logins per host (strace, not timed)
  local plan_logins plan_sshs apply_logins apply_sshs change_logins change_sshs floor_logins floor_sshs
  read -r plan_logins plan_sshs < <(count_logins "$run/plan.trace" "$infra" -C "$site" plan bench --parallel "$n")
  read -r apply_logins apply_sshs < <(count_logins "$run/apply.trace" "$infra" -C "$site" apply bench --yes --parallel "$n")
  read -r floor_logins floor_sshs < <(count_logins "$run/floor.trace" "$run/floor.sh")

  # ---- one file changes on every host: web.tag alternates a, b, a, ...; each run's recap is checked
  cat > "$run/change.sh" <<EOF
#!/bin/bash
t=a; [ "\$(cat $run/tag 2>/dev/null)" = a ] && t=b; echo \$t > $run/tag
$infra -C $site apply bench --yes --parallel $n --var web.tag=\$t > $run/change.out 2> $run/change.err || exit \$?
# Every host: exactly the nginx site file and the nginx reload changed.
[ "\$(grep -c ' changed=2 failed=0 unreachable=0\$' $run/change.out)" = $n ] ||
  { echo "unexpected recap in $run/change.out" >&2; exit 1; }
EOF
  chmod +x "$run/change.sh"
  "$run/change.sh" || die "the one-file change apply failed (N=$n): see $run/change.out"
  [ "$(grep -c '^h[0-9]*: \[1/2\] file /etc/nginx/conf.d/bench.conf: changed$' "$run/change.err")" = "$n" ] &&
    [ "$(grep -c '^h[0-9]*: \[2/2\] service nginx reload: changed$' "$run/change.err")" = "$n" ] ||
    die "the change apply did not change exactly the nginx site and reload nginx on every host (see $run/change.err)"
  change_cmds=$(note_commands "$run/change.err")

  read -r change_logins change_sshs < <(count_logins "$run/change.trace" "$run/change.sh")
  # Back to the applied state (web.tag=base), so that plan and apply measure "no changes".
  converge "$n" "$run"

  # ---- timings
  log "N=$n: hyperfine --warmup 1 --runs $runs"
  run_waited hyperfine --warmup 1 --runs "$runs" --export-json "$run/hyperfine.json" --style basic \
    -n "plan --detailed-exitcode, no changes" "$infra -C $site plan bench --detailed-exitcode --parallel $n" \
    -n "apply --yes, no changes" "$infra -C $site apply bench --yes --parallel $n" \
    -n "floor: 1 fresh ssh login/host running sha256sum + stat" "$run/floor.sh" \
    -n "apply --yes --var, 1 file changed + nginx reload" "$run/change.sh" >&2 ||
    die "hyperfine failed (N=$n)"

  # ---- CPU per host
  if [ -n "$cg_kind" ]; then
    converge "$n" "$run"
    log "N=$n: CPU per host (3 runs each)"
    local label cmd c h
    for label in "plan, no changes" "apply --yes, no changes" "floor" "apply --yes --var, 1 file changed"; do
      case $label in
        plan*) cmd=("$infra" -C "$site" plan bench --parallel "$n") ;;
        "apply --yes, no"*) cmd=("$infra" -C "$site" apply bench --yes --parallel "$n") ;;
        floor) cmd=("$run/floor.sh") ;;
        *) cmd=("$run/change.sh") ;;
      esac
      read -r c h < <(cpu_per_host "$n" "${cmd[@]}")
      cpu_rows+=("| $n | $label | $c | $h | $(awk -v c="$c" -v h="$h" 'BEGIN { printf "%.1f", c + h }') | $(awk -v c="$c" -v h="$h" -v n="$n" -v k="$(nproc)" 'BEGIN { printf "%.0f", (c + h) * n / k }') |")
    done
  fi

  local floor_median
  floor_median=$(jq -r '.results[2].median' "$run/hyperfine.json")
  local cmds=(
    "$(div "$plan_cmds" "$n")"
    "$(div "$apply_cmds" "$n")"
    "1"
    "$(div "$change_cmds" "$n") + 1 apply script"
  )
  local logins=(
    "$(div "$plan_logins" "$n")"
    "$(div "$apply_logins" "$n")"
    "$(div "$floor_logins" "$n")"
    "$(div "$change_logins" "$n")"
  )
  results+=("| $n | first apply from scratch (once) | $first_ms | | | $(awk -v a="$first_ms" -v f="$floor_median" 'BEGIN { printf "%.2f", a / 1000 / f }') | $(div "$first_cmds" "$n") + 1 apply script | 1 |")
  for i in 0 1 2 3; do
    results+=("$(jq -r --arg n "$n" --arg cmds "${cmds[$i]}" --arg logins "${logins[$i]}" \
      --argjson floor "$floor_median" --argjson i "$i" '
      .results[$i] | "| \($n) | \(.command) | \(.median * 1000 | round) | \(.min * 1000 | round) | \(.max * 1000 | round) | \(.median / $floor * 100 | round / 100) | \($cmds) | \($logins) |"' \
      "$run/hyperfine.json")")
  done
  notes+=("N=$n: \`sandbox.sh up\` took $up_ms ms. ssh processes started per run: plan $plan_sshs, no-op apply $apply_sshs, change apply $change_sshs, floor $floor_sshs (TCP logins: $plan_logins, $apply_logins, $change_logins, $floor_logins).")
  log "N=$n: done"
  "$sandbox" down "$state" > /dev/null 2>&1 || true
}

for n in "${sizes[@]}"; do
  bench_n "$n"
done

{
  echo "## bench/plan-apply.sh"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, kernel $(uname -r), commit $commit, load average at start $loadavg, hyperfine --warmup 1 --runs $runs."
  echo "Every host: role \`web\`, 25 files (24 under /etc/bench and an nginx site checked with \`nginx -t\` that notifies nginx), package nginx, service nginx (on_change: reload)."
  echo "infra runs with \`--parallel N\`; the floor is N parallel fresh \`ssh\` logins (curve25519-sha256, no ControlMaster), each running \`sha256sum\` + \`stat\` of the 25 files."
  echo "Remote commands per host: infra's \`note:\` line (M/N), plus the apply script on hosts with changes. SSH logins per host: TCP connections to port 22 per run (strace)."
  echo
  echo "| N | run | median ms | min ms | max ms | × floor | remote commands/host | SSH logins/host |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${results[@]}"
  if [ ${#cpu_rows[@]} -gt 0 ]; then
    echo
    echo "CPU time per host (mean of 3 runs; cgroup $cg_kind accounting): the controller (infra or xargs, and every ssh process they start) and the hosts (sshd, the sessions and what they run). On $(nproc) cores, N × total / $(nproc) is a lower bound of the wall time."
    echo
    echo "| N | run | controller ms/host | hosts ms/host | total ms/host | N × total / $(nproc) cores, ms |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${cpu_rows[@]}"
  fi
  echo
  printf -- '- %s\n' "${notes[@]}"
} | tee "$out"
