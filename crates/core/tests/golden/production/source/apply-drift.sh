set -u
umask 022
export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
S=${INFRA_STATE_DIR:-/var/lib/infra}
P="$S/pending"
if [ "${1:-}" != locked ]; then
  { mkdir -p "$S" && chmod 700 "$S"; } 2>/dev/null || { printf '@@infra\tfatal\tcannot create %s\n' "$S"; exit 1; }
  command -v flock >/dev/null || { printf '@@infra\tfatal\tflock (util-linux) is missing on this host: install it\n'; exit 1; }
  flock -n -o -E 75 "$S/lock" sh "$0" locked; rc=$?
  if [ $rc = 75 ]; then
    h=; [ -f "$S/holder" ] && IFS= read -r h < "$S/holder"
    printf '@@infra\tlocked\t%s\n' "${h:-?}"
  fi
  exit $rc
fi
run='run' who='unknown'
from=${SSH_CLIENT:-local}; from=${from%% *}
printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$who" "$from" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" $$ > "$S/holder"
rm -rf "$S/runs" "$S/backup" "$S/step.log" "$S/pending.new"
R="$S/runs/$run"
mkdir -p "$R" || { printf '@@infra\tfatal\tcannot create %s\n' "$R"; exit 1; }
me=$(id -un):$(id -gn)
log="$R/step.log"
say() { printf '@@infra\tstep\t%s\t%s\n' "$1" "$2"; }
fail() {
  rc=${2:-$?}
  say "$1" failed
  tail -n 25 "$log" 2>/dev/null | while IFS= read -r l; do printf '@@infra\tout\t%s\n' "$l"; done
  printf '@@infra\tout\t(exit status %s)\n' "$rc"
  exit 1
}
pending_add() { grep -Fqx "$1 $2" "$P" 2>/dev/null || printf '%s %s\n' "$1" "$2" >> "$P"; }
pending_done() {
  [ -f "$P" ] || return 0
  while read -r a b; do [ "$b" = "$1" ] || printf '%s %s\n' "$a" "$b"; done < "$P" > "$R/pending.new" && mv -f "$R/pending.new" "$P"
}
backup() { if [ -e "$2" ] || [ -L "$2" ]; then cp -pP "$2" "$R/$1"; else : > "$R/$1.absent"; fi; }
restore() {
  if [ -e "$R/$1.absent" ]; then rm -f "$2"; elif [ -e "$R/$1" ]; then cp -pP "$R/$1" "$2"; fi
}
# step 0: packages gitolite3
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'gitolite3' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
backup 1 '/etc/hosts'
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base) for source.production.wpdn; computed from inventories/production.yaml.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters

# production hosts (production.wpdn)
10.10.1.60	accounts1.production.wpdn accounts1
10.10.1.50	app1.production.wpdn app1
10.10.1.51	app2.production.wpdn app2
10.10.1.61	blog1.production.wpdn blog1
10.10.1.70	bots1.production.wpdn bots1
10.10.1.20	db1.production.wpdn db1
10.10.1.21	db2.production.wpdn db2
10.10.1.40	elastic1.production.wpdn elastic1
10.10.1.71	jobrunner1.production.wpdn jobrunner1
10.10.1.12	mail.production.wpdn mail
10.10.1.31	memcache1.production.wpdn memcache1
10.10.1.62	notes1.production.wpdn notes1
10.10.1.25	pg1.production.wpdn pg1
10.10.1.63	project1.production.wpdn project1
10.10.1.35	queue1.production.wpdn queue1
10.10.1.10	salt.production.wpdn salt
10.10.1.30	sessions1.production.wpdn sessions1
10.10.1.11	source.production.wpdn source
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 1 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/hosts'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 1 $r; }
say 1 changed
# step 2: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 2
pending_done 'ssh'
say 2 changed
# step 3: service exim4 restart
{ timeout 300 systemctl restart 'exim4'; } > "$log" 2>&1 < /dev/null || fail 3
pending_done 'exim4'
say 3 changed
# step 4: user git
getent passwd 'git' >/dev/null || useradd --system --home-dir '/srv/git' --shell '/bin/sh' 'git' > "$log" 2>&1 || fail 4
say 4 changed
# step 5: dir /srv/git
{ mkdir -p '/srv/git' && chown 'git':'git' '/srv/git' && chmod 0750 '/srv/git'; } > "$log" 2>&1 || fail 5
say 5 changed
# step 6: file /etc/gitolite3/admin.pub
backup 6 '/etc/gitolite3/admin.pub'
f='/etc/gitolite3/admin.pub'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s 'canary-gitolite_admin_pubkey
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 6 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/gitolite3/admin.pub'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 6 $r; }
say 6 changed
# step 7: command gitolite setup
timeout 1800 sh -c 'runuser -u git -- env HOME=/srv/git gitolite setup -pk /etc/gitolite3/admin.pub' > "$log" 2>&1 < /dev/null || fail 7
say 7 changed
rm -rf "$R"
printf '@@infra\tdone\n'
