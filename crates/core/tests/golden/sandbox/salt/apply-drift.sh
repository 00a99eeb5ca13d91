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
# step 0: packages xinetd
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'xinetd' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
backup 1 '/etc/hosts'
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base) for salt.sandbox.internal; computed from inventories/sandbox.yaml.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters

# sandbox hosts (sandbox.internal)
10.213.0.50	app1.sandbox.internal app1
10.213.0.51	app2.sandbox.internal app2
10.213.0.20	db1.sandbox.internal db1
10.213.0.12	mail.sandbox.internal mail
10.213.0.35	queue1.sandbox.internal queue1
10.213.0.10	salt.sandbox.internal salt
10.213.0.30	sessions1.sandbox.internal sessions1
10.213.0.11	source.sandbox.internal source
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 1 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/hosts'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 1 $r; }
say 1 changed
# step 2: service ssh start
{ timeout 300 service 'ssh' start; } > "$log" 2>&1 < /dev/null || fail 2
pending_done 'ssh'
say 2 changed
# step 3: dir /srv/backups
{ mkdir -p '/srv/backups' && chown 'root':'root' '/srv/backups' && chmod 0755 '/srv/backups'; } > "$log" 2>&1 || fail 3
say 3 changed
# step 4: file /etc/rsyncd.conf
backup 4 '/etc/rsyncd.conf'
f='/etc/rsyncd.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role salt): rsync modules served through xinetd (/etc/xinetd.d/rsync).
uid = nobody
gid = nogroup
use chroot = yes
max connections = 8
timeout = 300
reverse lookup = no
log file = /var/log/rsyncd.log
hosts allow = 127.0.0.1 10.213.0.50 10.213.0.51 10.213.0.20 10.213.0.12 10.213.0.35 10.213.0.10 10.213.0.30 10.213.0.11
hosts deny = *

[backups]
	comment = sandbox backups
	path = /srv/backups
	read only = yes
	list = yes
	uid = root
	gid = root
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 4 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/rsyncd.conf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 4 $r; }
say 4 changed
# step 5: service xinetd restart
{ timeout 300 service 'xinetd' restart; } > "$log" 2>&1 < /dev/null || fail 5
pending_done 'xinetd'
say 5 changed
# step 6: service rsync disable
{ if [ -e /etc/init.d/'rsync' ]; then update-rc.d 'rsync' disable; fi; } > "$log" 2>&1 < /dev/null || fail 6
say 6 changed
# step 7: service rsync stop
{ timeout 300 service 'rsync' stop; } > "$log" 2>&1 < /dev/null || fail 7
pending_done 'rsync'
say 7 changed
rm -rf "$R"
printf '@@infra\tdone\n'
