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
# step 0: packages rsync ca-certificates curl less vim-tiny openssh-server rsyslog postfix opendkim opendkim-tools mailgraph
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'rsyslog' 'postfix' 'opendkim' 'opendkim-tools' 'mailgraph' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
backup 1 '/etc/hosts'
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base) for mail.production.wpdn; computed from inventories/production.yaml.
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
# step 2: file /etc/resolv.conf
backup 2 '/etc/resolv.conf'
f='/etc/resolv.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base): the internal zone is served by the salt host'\''s gdnsd.
search production.wpdn
nameserver 10.10.1.10
nameserver 169.254.169.253
options timeout:2 attempts:2
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 2 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/resolv.conf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 2 $r; }
say 2 changed
# step 3: service ssh enable
{ timeout 300 systemctl enable 'ssh'; } > "$log" 2>&1 < /dev/null || fail 3
say 3 changed
# step 4: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 4
pending_done 'ssh'
say 4 changed
# step 5: dir /etc/dkimkeys
{ mkdir -p '/etc/dkimkeys' && chown 'opendkim':'opendkim' '/etc/dkimkeys' && chmod 0700 '/etc/dkimkeys'; } > "$log" 2>&1 || fail 5
say 5 changed
# step 6: file /etc/init.d/rsyslog
backup 6 '/etc/init.d/rsyslog'
f='/etc/init.d/rsyslog'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 077; printf %s '#!/bin/sh
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
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 6 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && chmod 0755 "$tmp" && mv -f "$tmp" '/etc/init.d/rsyslog'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 6 $r; }
say 6 changed
# step 7: file /etc/postfix/main.cf
pending_add reload 'postfix'
backup 7 '/etc/postfix/main.cf'
f='/etc/postfix/main.cf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role mail) for mail.production.wpdn: Postfix 3.7 relay for production.
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

mynetworks = 127.0.0.0/8 10.10.1.60/32 10.10.1.50/32 10.10.1.51/32 10.10.1.61/32 10.10.1.70/32 10.10.1.20/32 10.10.1.21/32 10.10.1.40/32 10.10.1.71/32 10.10.1.12/32 10.10.1.31/32 10.10.1.62/32 10.10.1.25/32 10.10.1.63/32 10.10.1.35/32 10.10.1.10/32 10.10.1.30/32 10.10.1.11/32
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
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 7 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/postfix/main.cf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 7 $r; }
sh -c 'postfix check' > "$log" 2>&1 < /dev/null || { r=$?; restore 7 '/etc/postfix/main.cf'; pending_done 'postfix'; (exit $r) || fail 7; }
say 7 changed
# step 8: file /etc/opendkim.conf
pending_add restart 'opendkim'
backup 8 '/etc/opendkim.conf'
f='/etc/opendkim.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role mail) for mail.production.wpdn: OpenDKIM 2.11 milter for Postfix
# (smtpd_milters = inet:localhost:8891). Signs mail of webplatform.org from the hosts of
# production (InternalHosts), verifies the rest.
# The key and signing tables and the host lists are inline data sets (comma-separated,
# key=value), computed from the inventory, so there are no separate table files to keep in step.
# DNS: infra._domainkey.webplatform.org TXT "v=DKIM1; k=rsa; p=<public key>"
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
InternalHosts		csl:127.0.0.1,10.10.1.60,10.10.1.50,10.10.1.51,10.10.1.61,10.10.1.70,10.10.1.20,10.10.1.21,10.10.1.40,10.10.1.71,10.10.1.12,10.10.1.31,10.10.1.62,10.10.1.25,10.10.1.63,10.10.1.35,10.10.1.10,10.10.1.30,10.10.1.11
ExternalIgnoreList	csl:127.0.0.1,10.10.1.60,10.10.1.50,10.10.1.51,10.10.1.61,10.10.1.70,10.10.1.20,10.10.1.21,10.10.1.40,10.10.1.71,10.10.1.12,10.10.1.31,10.10.1.62,10.10.1.25,10.10.1.63,10.10.1.35,10.10.1.10,10.10.1.30,10.10.1.11
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 8 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/opendkim.conf'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 8 $r; }
sh -c 'opendkim -n' > "$log" 2>&1 < /dev/null || { r=$?; restore 8 '/etc/opendkim.conf'; pending_done 'opendkim'; (exit $r) || fail 8; }
say 8 changed
# step 9: file /etc/dkimkeys/webplatform.org.private
pending_add restart 'opendkim'
backup 9 '/etc/dkimkeys/webplatform.org.private'
f='/etc/dkimkeys/webplatform.org.private'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 177; printf %s 'canary-dkim_private_key
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 9 $rc; }
{ { [ 'opendkim':'opendkim' = "$me" ] && ! [ -g "$dir" ]; } || chown 'opendkim':'opendkim' "$tmp" && mv -f "$tmp" '/etc/dkimkeys/webplatform.org.private'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 9 $r; }
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
