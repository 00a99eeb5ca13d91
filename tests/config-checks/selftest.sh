#!/usr/bin/env bash
# Self-test of check.sh: the good fixtures must all pass, and each bad fixture (one broken file
# per checker) must fail, on the expected checker only. Also: an empty DIR must fail.
# Usage: tests/config-checks/selftest.sh    (root; needs the packages .ci/run installs)
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
check=$here/check.sh
fx=$here/fixtures
tmp=$(mktemp -d /tmp/infra-config-selftest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ok=0 bad=0

pass() { ok=$((ok + 1)); echo "selftest ok    $*"; }
fail() { bad=$((bad + 1)); echo "selftest FAIL  $*"; }

# 1. good fixtures: exit 0, no FAIL/skip line.
out=$tmp/good.out
"$check" "$fx/good" > "$out" 2>&1; rc=$?
if [ $rc -eq 0 ] && ! grep -qE '^(FAIL|skip) ' "$out"; then
  pass "good fixtures: $(tail -n1 "$out")"
else
  fail "good fixtures (exit $rc):"; sed 's/^/    /' "$out"
fi

# 2. each bad fixture alone: exit 1, a FAIL line for the expected checker and no other FAIL.
declare -A expect=(
  [nginx-syntax]="nginx -t"
  [pg-conf]="postgres config"
  [pg-hba]="postgres pg_hba"
  [postfix-param]="postfix check"
  [gdnsd-zone]="gdnsd checkconf"
  [supervisor-signal]="supervisor parse"
  [mariadb-option]="mariadbd --help --verbose"
  [redis-directive]="redis-server + PING"
  [memcached-option]="memcached (debian wrapper)"
  [opendkim-param]="opendkim -n"
  [sshd-option]="sshd -t"
  [exim4-option]="update-exim4.conf + exim4 -bV"
  [rabbitmq-key]="rabbitmq cuttlefish"
  [keystone-option]="keystone (oslo-config-validator + loader)"
  [slapd-directive]="slapd -Tt"
  [python-syntax]="python3 -m py_compile"
  [gunicorn-setting]="gunicorn config"
)
for d in "$fx"/bad/*/; do
  name=$(basename "$d")
  want=${expect[$name]:-}
  if [ -z "$want" ]; then fail "bad/$name: no expectation in selftest.sh"; continue; fi
  mkdir -p "$tmp/$name"
  cp -a "$d" "$tmp/$name/$name"
  out=$tmp/$name.out
  "$check" "$tmp/$name" > "$out" 2>&1; rc=$?
  fails=$(grep -E '^FAIL ' "$out")
  if [ $rc -eq 1 ] && grep -qF "FAIL  $name  $want  " <<< "$fails" && [ "$(wc -l <<< "$fails")" -eq 1 ]; then
    pass "bad/$name fails on: $want"
  else
    fail "bad/$name (exit $rc, expected one FAIL on '$want'):"; sed 's/^/    /' "$out"
  fi
done
for name in "${!expect[@]}"; do
  [ -d "$fx/bad/$name" ] || fail "bad/$name: fixture missing"
done

# 3. nothing to check must fail.
mkdir -p "$tmp/empty/host1/etc"
"$check" "$tmp/empty" > "$tmp/empty.out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q '^0 passed, 0 failed' "$tmp/empty.out"; then
  pass "a DIR with nothing checkable fails"
else
  fail "empty DIR (exit $rc)"; sed 's/^/    /' "$tmp/empty.out"
fi

echo "$ok passed, $bad failed"
[ $bad -eq 0 ]
