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
for j in "$S"/runs/*/dirs; do
  [ -f "$j" ] || continue
  while IFS= read -r d; do rm -f -- "$d"/.infra.??????????; done < "$j"
done
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
  rm -rf "$R"
  exit 1
}
pending_add() { grep -Fqx "$1 $2" "$P" 2>/dev/null || printf '%s %s\n' "$1" "$2" >> "$P"; }
pending_done() {
  [ -f "$P" ] || return 0
  while read -r a b; do [ "$b" = "$1" ] || printf '%s %s\n' "$a" "$b"; done < "$P" > "$R/pending.new" && mv -f "$R/pending.new" "$P"
}
backup() { if [ -e "$2" ] || [ -L "$2" ]; then cp -pP "$2" "$R/$1"; else : > "$R/$1.absent"; fi; }
restore() {
  if [ -e "$R/$1.absent" ]; then rm -f "$2"
  elif [ -f "$R/$1" ] && ! [ -L "$R/$1" ]; then
    as=; [ -f "$R/$1.as" ] && read -r as < "$R/$1.as"
    stat -c '%u %g %a' "$R/$1" > "$R/$1.meta" && read -r o g m < "$R/$1.meta" || return
    # Written as the directory's owner: put back as them too, never as root.
    [ -z "$as" ] || o=$as
    put_file "$2" "$o" "$g" "$m" < "$R/$1"
  fi
}
dest_ok() {
  n=$1 f=$2 o=$3 g=$4 ok=$5 as= why=
  if [ -L "$f" ]; then
    printf '%s is a symbolic link (to %s): refusing to follow it; remove the link, or name the path it points to instead\n' "$f" "$(readlink "$f")" > "$log"
    fail "$n" 1
  fi
  d=${f%/*}; set --
  while [ -n "$d" ]; do set -- "$@" "$d"; d=${d%/*}; done
  stat -Lc '%u:%U:%G:%a:%n' -- "$@" / > "$R/stat" 2> "$log" || fail "$n"
  while IFS=: read -r uid user grp mode name; do
    m=$((0$mode)); free=$((m & 01000))
    if [ $free = 0 ] && [ $((m & 02)) != 0 ]; then why="$name is writable by every user"
    elif [ "$uid" != 0 ] && [ "$user" != "$o" ]; then why="$name is owned by $user"
    elif [ $free = 0 ] && [ $((m & 020)) != 0 ] && { [ "$grp" != "$g" ] || [ "$uid" = 0 ]; }; then why="$name is writable by group $grp"
    elif [ "$uid" != 0 ]; then as=$o
    fi
  done < "$R/stat"
  [ "$as" != "${me%%:*}" ] || as=
  if [ -n "$why" ] && [ "$ok" = 1 ]; then as=
  elif [ -n "$why" ]; then
    printf 'refusing to write %s: %s, who could swap it for a link while it is written; make that directory root'"'"'s and writable by root alone, or give the file to that user (owner:, infra then writes it as them), or add unsafe_parent: allow to this file in its role if you trust them\n' "$f" "$why" > "$log"
    fail "$n" 1
  fi
  printf '%s\n' "$as" > "$R/$n.as"
}
put_file() {
  printf '%s\n' "${1%/*}" >> "$R/dirs"
  if [ -n "$as" ]; then
    setpriv --reuid="$2" --regid="$3" --clear-groups sh -c 't=$(mktemp "${1%/*}/.infra.XXXXXXXXXX") && { cat > "$t" && chmod "$2" "$t" && mv -fT "$t" "$1" || { rm -f "$t"; false; }; }' sh "$1" "$4"
  else
    t=$(mktemp "${1%/*}/.infra.XXXXXXXXXX") && { cat > "$t" && { { [ "$2:$3" = "$me" ] && ! [ -g "${1%/*}" ]; } || chown -h "$2:$3" "$t"; } && chmod "$4" "$t" && mv -fT "$t" "$1" || { rm -f "$t"; false; }; }
  fi
}
# step 0: packages rsync ca-certificates curl less vim-tiny openssh-server rsyslog postfix opendkim opendkim-tools mailgraph
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
timeout 1800 apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'rsyslog' 'postfix' 'opendkim' 'opendkim-tools' 'mailgraph' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 1 "$f" 'root' 'root' 0
backup 1 "$f"
printf %s '# Managed by infra (role base) for mail.production.wpdn; computed from inventories/production.yaml.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters

# production hosts (production.wpdn)
10.10.1.60	accounts1.production.wpdn accounts1
10.10.1.64	accounts2.production.wpdn accounts2
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
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 1
say 1 changed
# step 2: file /etc/resolv.conf
f='/etc/resolv.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 2 "$f" 'root' 'root' 0
backup 2 "$f"
printf %s '# Managed by infra (role base): the internal zone is served by the salt host'\''s gdnsd.
search production.wpdn
nameserver 10.10.1.10
nameserver 169.254.169.253
options timeout:2 attempts:2
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 2
say 2 changed
# step 3: service ssh enable
{ timeout 300 systemctl enable 'ssh'; } > "$log" 2>&1 < /dev/null || fail 3
say 3 changed
# step 4: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 4
pending_done 'ssh'
say 4 changed
# step 5: dir /etc/dkimkeys
f='/etc/dkimkeys'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 5 "$f" 'opendkim' 'opendkim' 0
if [ -n "$as" ]; then setpriv --reuid='opendkim' --regid='opendkim' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0700; else mkdir -p "$f" && chown -h 'opendkim':'opendkim' "$f" && chmod 0700 "$f"; fi > "$log" 2>&1 || fail 5
say 5 changed
# step 6: file /etc/init.d/rsyslog
f='/etc/init.d/rsyslog'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 6 "$f" 'root' 'root' 0
backup 6 "$f"
printf %s '#!/bin/sh
### BEGIN INIT INFO
# Provides:          rsyslog
# Required-Start:    $remote_fs $time
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: rsyslog, which writes /var/log/mail.log for mailgraph
### END INIT INFO
# Managed by infra (role mail): Debian 12 ships rsyslog with a systemd unit only; this script
# runs it on hosts without systemd (where the unit exists, systemd ignores the script).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
PIDFILE=/run/rsyslogd.pid
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "$1" in
  start) running || start-stop-daemon --start --quiet --pidfile "$PIDFILE" --exec /usr/sbin/rsyslogd ;;
  stop) start-stop-daemon --stop --quiet --retry 5 --pidfile "$PIDFILE" --exec /usr/sbin/rsyslogd || true ;;
  restart|force-reload) "$0" stop; "$0" start ;;
  reload) running && kill -HUP "$(cat "$PIDFILE")" ;;
  status) running ;;
  *) echo "usage: $0 start|stop|restart|reload|status" >&2; exit 2 ;;
esac
' | put_file "$f" 'root' 'root' 0755 2>"$log" || fail 6
say 6 changed
# step 7: file /etc/postfix/main.cf
f='/etc/postfix/main.cf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 7 "$f" 'root' 'root' 0
pending_add reload 'postfix'
backup 7 "$f"
printf %s '# Managed by infra (role mail) for mail.production.wpdn: Postfix 3.7 relay for production.
# Relays for the hosts of the environment only (mynetworks, computed from the inventory);
# everything else may only deliver to this host.
compatibility_level = 3.6

myhostname = mail.webplatform.org
mydomain = webplatform.org
myorigin = $mydomain
mydestination = $myhostname, mail.production.wpdn, localhost
relayhost =
inet_interfaces = all
inet_protocols = ipv4

mynetworks = 127.0.0.0/8 10.10.1.60/32 10.10.1.64/32 10.10.1.50/32 10.10.1.51/32 10.10.1.61/32 10.10.1.70/32 10.10.1.20/32 10.10.1.21/32 10.10.1.40/32 10.10.1.71/32 10.10.1.12/32 10.10.1.31/32 10.10.1.62/32 10.10.1.25/32 10.10.1.63/32 10.10.1.35/32 10.10.1.10/32 10.10.1.30/32 10.10.1.11/32
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_helo_required = yes
disable_vrfy_command = yes

smtpd_banner = $myhostname ESMTP
biff = no
append_dot_mydomain = no
readme_directory = no
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
mailbox_size_limit = 0
message_size_limit = 26214400
recipient_delimiter = +

# TLS: opportunistic in both directions (Debian'\''s snakeoil certificate from ssl-cert).
smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key
smtpd_tls_security_level = may
smtp_tls_CApath = /etc/ssl/certs
smtp_tls_security_level = may
smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache

# OpenDKIM signs mail from mynetworks and verifies the rest (see /etc/opendkim.conf).
milter_default_action = accept
milter_protocol = 6
smtpd_milters = inet:localhost:8891
non_smtpd_milters = $smtpd_milters
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 7
sh -c 'postfix check' > "$log" 2>&1 < /dev/null || { r=$?; restore 7 '/etc/postfix/main.cf'; pending_done 'postfix'; (exit $r) || fail 7; }
say 7 changed
# step 8: file /etc/opendkim.conf
f='/etc/opendkim.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 8 "$f" 'root' 'root' 0
pending_add restart 'opendkim'
backup 8 "$f"
printf %s '# Managed by infra (role mail) for mail.production.wpdn: OpenDKIM 2.11 milter for Postfix
# (smtpd_milters = inet:localhost:8891). Signs mail of webplatform.org from the hosts of
# production (InternalHosts), verifies the rest.
# The key and signing tables and the host lists are inline data sets (comma-separated,
# key=value), computed from the inventory, so there are no separate table files to keep in step.
# DNS: infra._domainkey.webplatform.org TXT "v=DKIM1; k=rsa; p=<public key>",
# written by infra from the same key (roles/mail.yaml `dns:`).
Syslog			yes
SyslogSuccess		yes
Canonicalization	relaxed/simple
Mode			sv
OversignHeaders		From
UserID			opendkim
UMask			007
Socket			inet:8891@localhost
PidFile			/run/opendkim/opendkim.pid
TrustAnchorFile		/usr/share/dns/root.key

KeyTable		csl:infra._domainkey.webplatform.org=webplatform.org:infra:/etc/dkimkeys/webplatform.org.private
SigningTable		csl:webplatform.org=infra._domainkey.webplatform.org
InternalHosts		csl:127.0.0.1,10.10.1.60,10.10.1.64,10.10.1.50,10.10.1.51,10.10.1.61,10.10.1.70,10.10.1.20,10.10.1.21,10.10.1.40,10.10.1.71,10.10.1.12,10.10.1.31,10.10.1.62,10.10.1.25,10.10.1.63,10.10.1.35,10.10.1.10,10.10.1.30,10.10.1.11
ExternalIgnoreList	csl:127.0.0.1,10.10.1.60,10.10.1.64,10.10.1.50,10.10.1.51,10.10.1.61,10.10.1.70,10.10.1.20,10.10.1.21,10.10.1.40,10.10.1.71,10.10.1.12,10.10.1.31,10.10.1.62,10.10.1.25,10.10.1.63,10.10.1.35,10.10.1.10,10.10.1.30,10.10.1.11
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 8
sh -c 'opendkim -n' > "$log" 2>&1 < /dev/null || { r=$?; restore 8 '/etc/opendkim.conf'; pending_done 'opendkim'; (exit $r) || fail 8; }
say 8 changed
# step 9: file /etc/dkimkeys/webplatform.org.private
f='/etc/dkimkeys/webplatform.org.private'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 9 "$f" 'opendkim' 'opendkim' 0
pending_add restart 'opendkim'
backup 9 "$f"
printf %s 'canary-dkim_private_key
' | put_file "$f" 'opendkim' 'opendkim' 0600 2>"$log" || fail 9
say 9 changed
# step 10: service rsyslog enable
{ timeout 300 systemctl enable 'rsyslog'; } > "$log" 2>&1 < /dev/null || fail 10
say 10 changed
# step 11: service rsyslog start
{ timeout 300 systemctl start 'rsyslog'; } > "$log" 2>&1 < /dev/null || fail 11
pending_done 'rsyslog'
say 11 changed
# step 12: service postfix enable
{ timeout 300 systemctl enable 'postfix'; } > "$log" 2>&1 < /dev/null || fail 12
say 12 changed
# step 13: service postfix start
{ timeout 300 systemctl start 'postfix'; } > "$log" 2>&1 < /dev/null || fail 13
pending_done 'postfix'
say 13 changed
# step 14: service opendkim enable
{ timeout 300 systemctl enable 'opendkim'; } > "$log" 2>&1 < /dev/null || fail 14
say 14 changed
# step 15: service opendkim start
sh -c 'opendkim -n' > "$log" 2>&1 < /dev/null || { r=$?; restore 8 '/etc/opendkim.conf'; restore 9 '/etc/dkimkeys/webplatform.org.private'; pending_done 'opendkim'; (exit $r) || fail 15; }
{ timeout 300 systemctl start 'opendkim'; } > "$log" 2>&1 < /dev/null || fail 15
pending_done 'opendkim'
say 15 changed
# step 16: service mailgraph enable
{ timeout 300 systemctl enable 'mailgraph'; } > "$log" 2>&1 < /dev/null || fail 16
say 16 changed
# step 17: service mailgraph start
{ timeout 300 systemctl start 'mailgraph'; } > "$log" 2>&1 < /dev/null || fail 17
pending_done 'mailgraph'
say 17 changed
# step 18: command postfix aliases database
timeout 1800 sh -c 'newaliases' > "$log" 2>&1 < /dev/null || fail 18
say 18 changed
rm -rf "$R"
printf '@@infra\tdone\n'
