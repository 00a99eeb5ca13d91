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
# step 0: packages rsync ca-certificates curl less vim-tiny openssh-server exim4-daemon-light bsd-mailx nginx php-fpm php-mysql
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
timeout 1800 apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'exim4-daemon-light' 'bsd-mailx' 'nginx' 'php-fpm' 'php-mysql' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 1 "$f" 'root' 'root' 0
backup 1 "$f"
printf %s '# Managed by infra (role base) for project1.production.wpdn; computed from inventories/production.yaml.
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
# step 5: file /etc/exim4/update-exim4.conf.conf
f='/etc/exim4/update-exim4.conf.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 5 "$f" 'root' 'root' 0
pending_add restart 'exim4'
backup 5 "$f"
printf %s '# Managed by infra (role satellite). Debian'\''s exim4 reads this through update-exim4.conf,
# which the exim4 init script runs on (re)start.
# Satellite: no local delivery except to the spool, everything is sent to the mail host.
dc_eximconfig_configtype='\''satellite'\''
dc_other_hostnames='\'''\''
dc_local_interfaces='\''127.0.0.1 ; ::1'\''
dc_readhost='\''webplatform.org'\''
dc_relay_domains='\'''\''
dc_minimaldns='\''false'\''
dc_relay_nets='\'''\''
dc_smarthost='\''mail.production.wpdn'\''
CFILEMODE='\''644'\''
dc_use_split_config='\''false'\''
dc_hide_mailname='\''true'\''
dc_mailname_in_oh='\''true'\''
dc_localdelivery='\''mail_spool'\''
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 5
say 5 changed
# step 6: file /etc/mailname
f='/etc/mailname'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 6 "$f" 'root' 'root' 0
pending_add restart 'exim4'
backup 6 "$f"
printf %s 'project1.production.wpdn
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 6
say 6 changed
# step 7: service exim4 enable
{ timeout 300 systemctl enable 'exim4'; } > "$log" 2>&1 < /dev/null || fail 7
say 7 changed
# step 8: service exim4 start
{ timeout 300 systemctl start 'exim4'; } > "$log" 2>&1 < /dev/null || fail 8
pending_done 'exim4'
say 8 changed
# step 9: file /etc/nginx/nginx.conf
f='/etc/nginx/nginx.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 9 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 9 "$f"
printf %s '# Managed by infra (role nginx) for project1.production.wpdn.
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 1024;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    server_tokens off;
    keepalive_timeout 65;
    client_max_body_size 20m;

    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;

    access_log /var/log/nginx/access.log;

    gzip on;
    gzip_vary on;
    gzip_proxied any;
    gzip_types text/plain text/css application/json application/javascript text/xml application/xml image/svg+xml;

    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*.conf;
}
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 9
sh -c 'nginx -t' > "$log" 2>&1 < /dev/null || { r=$?; restore 9 '/etc/nginx/nginx.conf'; pending_done 'nginx'; (exit $r) || fail 9; }
say 9 changed
# step 10: service nginx enable
{ timeout 300 systemctl enable 'nginx'; } > "$log" 2>&1 < /dev/null || fail 10
say 10 changed
# step 11: service nginx start
{ timeout 300 systemctl start 'nginx'; } > "$log" 2>&1 < /dev/null || fail 11
pending_done 'nginx'
say 11 changed
# step 12: dir /etc/ssl/infra
f='/etc/ssl/infra'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 12 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 12
say 12 changed
# step 13: dir /etc/ssl/infra/private
f='/etc/ssl/infra/private'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 13 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0700; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0700 "$f"; fi > "$log" 2>&1 || fail 13
say 13 changed
# step 14: dir /var/www/project
f='/var/www/project'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 14 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 14
say 14 changed
# step 15: dir /var/www/project/public
f='/var/www/project/public'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 15 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 15
say 15 changed
# step 16: file /etc/ssl/infra/project.crt
f='/etc/ssl/infra/project.crt'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 16 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 16 "$f"
printf %s 'canary-site_tls_cert
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 16
say 16 changed
# step 17: file /etc/ssl/infra/private/project.key
f='/etc/ssl/infra/private/project.key'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 17 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 17 "$f"
printf %s 'canary-site_tls_key
' | put_file "$f" 'root' 'root' 0600 2>"$log" || fail 17
say 17 changed
# step 18: file /etc/nginx/sites-enabled/project.conf
f='/etc/nginx/sites-enabled/project.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 18 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 18 "$f"
printf %s '# Managed by infra: site project on project1.production.wpdn.
server {
    listen 80;
    server_name project.webplatform.org project1.production.wpdn;
    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl http2;
    # The role'\''s `tls:` certificate and key, from the environment'\''s secrets.
    ssl_certificate /etc/ssl/infra/project.crt;
    ssl_certificate_key /etc/ssl/infra/private/project.key;
    ssl_session_cache shared:SSL:10m;
    server_name project.webplatform.org project1.production.wpdn;

    access_log /var/log/nginx/project-access.log;
    error_log /var/log/nginx/project-error.log;

    root /var/www/project/public;
    index index.html index.php;

    location / {
        try_files $uri $uri/ /index.php?$args;
    }

    location ~ \.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php-fpm.sock;
    }

}
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 18
sh -c 'nginx -t' > "$log" 2>&1 < /dev/null || { r=$?; restore 18 '/etc/nginx/sites-enabled/project.conf'; (exit $r) || fail 18; }
say 18 changed
# step 19: service nginx reload
sh -c 'nginx -t' > "$log" 2>&1 < /dev/null || { r=$?; restore 16 '/etc/ssl/infra/project.crt'; restore 17 '/etc/ssl/infra/private/project.key'; restore 18 '/etc/nginx/sites-enabled/project.conf'; pending_done 'nginx'; (exit $r) || fail 19; }
{ timeout 300 systemctl reload-or-restart 'nginx'; } > "$log" 2>&1 < /dev/null || fail 19
pending_done 'nginx'
say 19 changed
rm -rf "$R"
printf '@@infra\tdone\n'
