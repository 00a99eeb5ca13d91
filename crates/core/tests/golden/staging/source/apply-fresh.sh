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
# step 0: volume /srv/git
dev='/dev/xvdf'; n=0; while [ ! -b "$dev" ] && [ $n -lt 120 ]; do sleep 1; n=$((n+1)); done
if [ ! -b "$dev" ]; then echo "no block device $dev: is the volume attached?" > "$log"; fail 0 1; fi
if ! blkid -o value -s TYPE "$dev" >/dev/null 2>&1; then
  mkfs -t 'ext4' -q "$dev" > "$log" 2>&1 || fail 0
  if [ -d '/srv/git' ] && [ -n "$(ls -A '/srv/git')" ]; then
    t=$(mktemp -d) && mount -t 'ext4' "$dev" "$t" && cp -a '/srv/git'/. "$t"/ && umount "$t" && rmdir "$t" || fail 0
  fi
fi
mkdir -p '/srv/git' && uuid=$(blkid -o value -s UUID "$dev") || fail 0
grep -q "^UUID=$uuid " /etc/fstab 2>/dev/null || printf 'UUID=%s %s %s defaults,nofail 0 2\n' "$uuid" '/srv/git' 'ext4' >> /etc/fstab || fail 0
mount '/srv/git' > "$log" 2>&1 || mount -t 'ext4' "$dev" '/srv/git' > "$log" 2>&1 || fail 0
say 0 changed
# step 1: packages rsync ca-certificates curl less vim-tiny openssh-server exim4-daemon-light bsd-mailx git gitolite3
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'exim4-daemon-light' 'bsd-mailx' 'git' 'gitolite3' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 1 $rc
say 1 changed
# step 2: file /etc/hosts
backup 2 '/etc/hosts'
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base) for source.staging.wpdn; computed from inventories/staging.yaml.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters

# staging hosts (staging.wpdn)
10.20.1.50	app1.staging.wpdn app1
10.20.1.20	db1.staging.wpdn db1
10.20.1.12	mail.staging.wpdn mail
10.20.1.35	queue1.staging.wpdn queue1
10.20.1.10	salt.staging.wpdn salt
10.20.1.30	sessions1.staging.wpdn sessions1
10.20.1.11	source.staging.wpdn source
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 2 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/hosts'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 2 $r; }
say 2 changed
# step 3: file /etc/resolv.conf
backup 3 '/etc/resolv.conf'
f='/etc/resolv.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base): the internal zone is served by the salt host'\''s gdnsd.
search staging.wpdn
nameserver 10.20.1.10
nameserver 169.254.169.253
options timeout:2 attempts:2
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 3 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/resolv.conf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 3 $r; }
say 3 changed
# step 4: service ssh enable
{ timeout 300 systemctl enable 'ssh'; } > "$log" 2>&1 < /dev/null || fail 4
say 4 changed
# step 5: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 5
pending_done 'ssh'
say 5 changed
# step 6: file /etc/exim4/update-exim4.conf.conf
pending_add restart 'exim4'
backup 6 '/etc/exim4/update-exim4.conf.conf'
f='/etc/exim4/update-exim4.conf.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role satellite). Debian'\''s exim4 reads this through update-exim4.conf,
# which the exim4 init script runs on (re)start.
# Satellite: no local delivery except to the spool, everything is sent to the mail host.
dc_eximconfig_configtype='\''satellite'\''
dc_other_hostnames='\'''\''
dc_local_interfaces='\''127.0.0.1 ; ::1'\''
dc_readhost='\''webplatformstaging.org'\''
dc_relay_domains='\'''\''
dc_minimaldns='\''false'\''
dc_relay_nets='\'''\''
dc_smarthost='\''mail.staging.wpdn'\''
CFILEMODE='\''644'\''
dc_use_split_config='\''false'\''
dc_hide_mailname='\''true'\''
dc_mailname_in_oh='\''true'\''
dc_localdelivery='\''mail_spool'\''
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 6 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/exim4/update-exim4.conf.conf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 6 $r; }
say 6 changed
# step 7: file /etc/mailname
pending_add restart 'exim4'
backup 7 '/etc/mailname'
f='/etc/mailname'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s 'source.staging.wpdn
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 7 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/mailname'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 7 $r; }
say 7 changed
# step 8: service exim4 enable
{ timeout 300 systemctl enable 'exim4'; } > "$log" 2>&1 < /dev/null || fail 8
say 8 changed
# step 9: service exim4 start
{ timeout 300 systemctl start 'exim4'; } > "$log" 2>&1 < /dev/null || fail 9
pending_done 'exim4'
say 9 changed
# step 10: user git
getent passwd 'git' >/dev/null || useradd --system --home-dir '/srv/git' --shell '/bin/sh' 'git' > "$log" 2>&1 || fail 10
say 10 changed
# step 11: dir /srv/git
{ mkdir -p '/srv/git' && chown 'git':'git' '/srv/git' && chmod 0750 '/srv/git'; } > "$log" 2>&1 || fail 11
say 11 changed
# step 12: file /etc/gitolite3/admin.pub
backup 12 '/etc/gitolite3/admin.pub'
f='/etc/gitolite3/admin.pub'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s 'canary-gitolite_admin_pubkey
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 12 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/gitolite3/admin.pub'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 12 $r; }
say 12 changed
# step 13: command gitolite setup
timeout 1800 sh -c 'runuser -u git -- env HOME=/srv/git gitolite setup -pk /etc/gitolite3/admin.pub' > "$log" 2>&1 < /dev/null || fail 13
say 13 changed
rm -rf "$R"
printf '@@infra\tdone\n'
