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
# step 0: packages rsync ca-certificates curl less vim-tiny openssh-server exim4-daemon-light bsd-mailx nginx python3 python3-venv supervisor gunicorn python3-celery python3-psycopg2 python3-redis
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
timeout 1800 apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'exim4-daemon-light' 'bsd-mailx' 'nginx' 'python3' 'python3-venv' 'supervisor' 'gunicorn' 'python3-celery' 'python3-psycopg2' 'python3-redis' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 1 "$f" 'root' 'root' 0
backup 1 "$f"
printf %s '# Managed by infra (role base) for app1.production.wpdn; computed from inventories/production.yaml.
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
printf %s 'app1.production.wpdn
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
printf %s '# Managed by infra (role nginx) for app1.production.wpdn.
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
# step 12: file /usr/local/sbin/infra-app-setup
f='/usr/local/sbin/infra-app-setup'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 12 "$f" 'root' 'root' 0
backup 12 "$f"
printf %s '#!/bin/sh
# Managed by infra (role app). `check` exits 0 when there is nothing to do; `apply` does it:
# the layout under /var/www/<app> (also listed in the role'\''s dirs, which spell out
# the default app name). The code and its virtualenv are role app'\''s release
# (/var/www/<app>/releases/<commit>, `current`).
set -eu
ROOT='\''/var/www/webplatform'\''
USER='\''www-data'\''

layout_ok() {
    for d in log public/static public/media ssl run; do
        [ -d "$ROOT/$d" ] || return 1
    done
}

case "${1:-}" in
    check)
        layout_ok
        ;;
    apply)
        install -d -m 0755 "$ROOT" "$ROOT/public" "$ROOT/public/static"
        install -d -m 0750 -o "$USER" -g adm "$ROOT/log"
        install -d -m 0755 -o "$USER" -g "$USER" "$ROOT/public/media" "$ROOT/run"
        install -d -m 0700 "$ROOT/ssl"
        ;;
    *)
        echo "usage: $0 check|apply" >&2
        exit 2
        ;;
esac
' | put_file "$f" 'root' 'root' 0700 2>"$log" || fail 12
say 12 changed
# step 13: command app layout
timeout 1800 sh -c '/usr/local/sbin/infra-app-setup apply' > "$log" 2>&1 < /dev/null || fail 13
say 13 changed
# step 14: dir /etc/ssl/infra
f='/etc/ssl/infra'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 14 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 14
say 14 changed
# step 15: dir /etc/ssl/infra/private
f='/etc/ssl/infra/private'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 15 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0700; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0700 "$f"; fi > "$log" 2>&1 || fail 15
say 15 changed
# step 16: dir /var/www/webplatform
f='/var/www/webplatform'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 16 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 16
say 16 changed
# step 17: dir /var/www/webplatform/log
f='/var/www/webplatform/log'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 17 "$f" 'www-data' 'adm' 0
if [ -n "$as" ]; then setpriv --reuid='www-data' --regid='adm' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0750; else mkdir -p "$f" && chown -h 'www-data':'adm' "$f" && chmod 0750 "$f"; fi > "$log" 2>&1 || fail 17
say 17 changed
# step 18: dir /var/www/webplatform/public
f='/var/www/webplatform/public'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 18 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 18
say 18 changed
# step 19: dir /var/www/webplatform/public/static
f='/var/www/webplatform/public/static'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 19 "$f" 'root' 'root' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='root' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'root':'root' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 19
say 19 changed
# step 20: dir /var/www/webplatform/public/media
f='/var/www/webplatform/public/media'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 20 "$f" 'www-data' 'www-data' 0
if [ -n "$as" ]; then setpriv --reuid='www-data' --regid='www-data' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'www-data':'www-data' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 20
say 20 changed
# step 21: dir /var/www/webplatform/run
f='/var/www/webplatform/run'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 21 "$f" 'www-data' 'www-data' 0
if [ -n "$as" ]; then setpriv --reuid='www-data' --regid='www-data' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0755; else mkdir -p "$f" && chown -h 'www-data':'www-data' "$f" && chmod 0755 "$f"; fi > "$log" 2>&1 || fail 21
say 21 changed
# step 22: dir /etc/webplatform
f='/etc/webplatform'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 22 "$f" 'root' 'www-data' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='www-data' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0750; else mkdir -p "$f" && chown -h 'root':'www-data' "$f" && chmod 0750 "$f"; fi > "$log" 2>&1 || fail 22
say 22 changed
# step 23: file /etc/ssl/infra/app.crt
f='/etc/ssl/infra/app.crt'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 23 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 23 "$f"
printf %s 'canary-site_tls_cert
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 23
say 23 changed
# step 24: file /etc/ssl/infra/private/app.key
f='/etc/ssl/infra/private/app.key'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 24 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 24 "$f"
printf %s 'canary-site_tls_key
' | put_file "$f" 'root' 'root' 0600 2>"$log" || fail 24
say 24 changed
# step 25: file /etc/nginx/sites-enabled/webplatform.conf
f='/etc/nginx/sites-enabled/webplatform.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 25 "$f" 'root' 'root' 0
pending_add reload 'nginx'
backup 25 "$f"
printf %s '# Managed by infra (role app): webplatform on app1.production.wpdn.
# nginx serves static and media files itself and proxies everything else to gunicorn.
upstream webplatform_gunicorn {
    server 127.0.0.1:8000 fail_timeout=0;
}

server {
    listen 80 default_server;
    server_name webplatform.org www.webplatform.org app1.production.wpdn;
    # Everything is served over https (the release health check talks to gunicorn directly).
    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl http2 default_server;
    # The role'\''s `tls:` certificate and key, from the environment'\''s secrets.
    ssl_certificate /etc/ssl/infra/app.crt;
    ssl_certificate_key /etc/ssl/infra/private/app.key;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1d;
    server_name webplatform.org www.webplatform.org app1.production.wpdn;

    access_log /var/log/nginx/webplatform-access.log;
    error_log /var/log/nginx/webplatform-error.log;

    root /var/www/webplatform/public;

    location /static/ {
        alias /var/www/webplatform/public/static/;
        expires 30d;
        access_log off;
    }

    location /media/ {
        alias /var/www/webplatform/public/media/;
        expires 7d;
    }

    location / {
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_redirect off;
        proxy_read_timeout 30s;
        proxy_pass http://webplatform_gunicorn;
    }
}
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 25
sh -c 'nginx -t' > "$log" 2>&1 < /dev/null || { r=$?; restore 25 '/etc/nginx/sites-enabled/webplatform.conf'; (exit $r) || fail 25; }
say 25 changed
# step 26: file /etc/webplatform/gunicorn.conf.py
f='/etc/webplatform/gunicorn.conf.py'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 26 "$f" 'root' 'www-data' 0
pending_add restart 'supervisor'
backup 26 "$f"
printf %s '# Managed by infra (role app): gunicorn settings for webplatform on app1.production.wpdn.
bind = "127.0.0.1:8000"
workers = 4
worker_class = "sync"
timeout = 30
max_requests = 1000
max_requests_jitter = 50
# chdir is the `current` link: on SIGHUP (the release'\''s reload) the master chdirs again and
# starts new workers, which import the new release; the old workers finish their requests.
chdir = "/var/www/webplatform/current"
pythonpath = "/var/www/webplatform/current"
proc_name = "webplatform"
forwarded_allow_ips = "127.0.0.1"
accesslog = "/var/www/webplatform/log/gunicorn-access.log"
errorlog = "-"
loglevel = "info"
' | put_file "$f" 'root' 'www-data' 0640 2>"$log" || fail 26
say 26 changed
# step 27: file /etc/webplatform/env
f='/etc/webplatform/env'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 27 "$f" 'root' 'www-data' 0
pending_add restart 'supervisor'
backup 27 "$f"
printf %s '# Managed by infra (role app): environment of the app'\''s processes.
# Read by /usr/local/bin/<app>-run with `set -a; . <this file>`: every value is one sh word
# (the `sh` filter), and secrets in URLs are percent-encoded first (the `url` filter).
# No value is written into a comment (a newline in it would end the comment).
DJANGO_SETTINGS_MODULE='\''webplatform.settings'\''
SECRET_KEY='\''canary-app_secret_key'\''
DEBUG='\''false'\''
ALLOWED_HOSTS='\''webplatform.org,www.webplatform.org,app1.production.wpdn'\''
STATIC_ROOT='\''/var/www/webplatform/public/static'\''
MEDIA_ROOT='\''/var/www/webplatform/public/media'\''

DB_NAME='\''webplatform'\''
DB_USER='\''webplatform'\''
DB_PASSWORD='\''canary-app_db_password'\''
DB_HOST='\''10.10.1.25'\''
DB_PORT='\''5432'\''
DATABASE_URL='\''postgres://webplatform:canary-app_db_password@10.10.1.25:5432/webplatform'\''

BROKER_URL='\''amqp://webplatform:canary-rabbitmq_app_password@10.10.1.35:5672/webplatform'\''
CELERY_BROKER_URL='\''amqp://webplatform:canary-rabbitmq_app_password@10.10.1.35:5672/webplatform'\''

# Session store: Redis on the sessions hosts.
REDIS_HOSTS='\''10.10.1.30:6379'\''
REDIS_PASSWORD='\''canary-redis_password'\''
SESSION_REDIS_URL='\''redis://:canary-redis_password@10.10.1.30:6379/0'\''
SESSION_MEMCACHED_LOCATION='\''10.10.1.30:11211'\''
# General object cache: memcached on the memcache hosts (empty when the environment has none).
CACHE_MEMCACHED_LOCATION='\''10.10.1.31:11211'\''

' | put_file "$f" 'root' 'www-data' 0640 2>"$log" || fail 27
say 27 changed
# step 28: file /usr/local/bin/webplatform-run
f='/usr/local/bin/webplatform-run'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 28 "$f" 'root' 'root' 0
pending_add restart 'supervisor'
backup 28 "$f"
printf %s '#!/bin/sh
# Managed by infra (role app): run a command of the app with its /etc/<app>/env exported, from
# the live release (`current`). Used by the supervisor programs.
set -eu
set -a
. '\''/etc/webplatform/env'\''
set +a
cd '\''/var/www/webplatform/current'\''
exec "$@"
' | put_file "$f" 'root' 'root' 0755 2>"$log" || fail 28
say 28 changed
# step 29: file /etc/supervisor/conf.d/webplatform-gunicorn.conf
f='/etc/supervisor/conf.d/webplatform-gunicorn.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 29 "$f" 'root' 'root' 0
pending_add restart 'supervisor'
backup 29 "$f"
printf %s '; Managed by infra (role app): supervisor program webplatform-gunicorn on app1.production.wpdn.
; One template, rendered once per program (gunicorn, celery-worker, celery-beat).
[program:webplatform-gunicorn]
command=/usr/local/bin/webplatform-run /var/www/webplatform/current/venv/bin/python -m gunicorn --config /etc/webplatform/gunicorn.conf.py infra_demo_wsgi:application
directory=/var/www/webplatform/current
user=www-data
numprocs=1
autostart=true
autorestart=true
startsecs=5
; Before the first release is switched in, `current` does not exist and the program cannot
; start: supervisor keeps retrying (growing back-off), and the release'\''s reload starts it.
startretries=30
stopsignal=TERM
stopwaitsecs=30
stopasgroup=true
killasgroup=true
priority=100
redirect_stderr=true
stdout_logfile=/var/log/supervisor/webplatform-gunicorn.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 29
say 29 changed
# step 30: file /etc/supervisor/conf.d/webplatform-celery-worker.conf
f='/etc/supervisor/conf.d/webplatform-celery-worker.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 30 "$f" 'root' 'root' 0
pending_add restart 'supervisor'
backup 30 "$f"
printf %s '; Managed by infra (role app): supervisor program webplatform-celery-worker on app1.production.wpdn.
; One template, rendered once per program (gunicorn, celery-worker, celery-beat).
[program:webplatform-celery-worker]
command=/usr/local/bin/webplatform-run /var/www/webplatform/current/venv/bin/python -m celery --app infra_demo_celery worker --loglevel info --concurrency 4
directory=/var/www/webplatform/current
user=www-data
numprocs=1
autostart=true
autorestart=true
startsecs=5
; Before the first release is switched in, `current` does not exist and the program cannot
; start: supervisor keeps retrying (growing back-off), and the release'\''s reload starts it.
startretries=30
stopsignal=TERM
stopwaitsecs=600
stopasgroup=true
killasgroup=true
priority=200
redirect_stderr=true
stdout_logfile=/var/log/supervisor/webplatform-celery-worker.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 30
say 30 changed
# step 31: file /etc/supervisor/conf.d/webplatform-celery-beat.conf
f='/etc/supervisor/conf.d/webplatform-celery-beat.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 31 "$f" 'root' 'root' 0
pending_add restart 'supervisor'
backup 31 "$f"
printf %s '; Managed by infra (role app): supervisor program webplatform-celery-beat on app1.production.wpdn.
; One template, rendered once per program (gunicorn, celery-worker, celery-beat).
[program:webplatform-celery-beat]
command=/usr/local/bin/webplatform-run /var/www/webplatform/current/venv/bin/python -m celery --app infra_demo_celery beat --loglevel info --schedule /var/www/webplatform/run/celerybeat-schedule
directory=/var/www/webplatform/current
user=www-data
numprocs=1
autostart=true
autorestart=true
startsecs=5
; Before the first release is switched in, `current` does not exist and the program cannot
; start: supervisor keeps retrying (growing back-off), and the release'\''s reload starts it.
startretries=30
stopsignal=TERM
stopwaitsecs=30
stopasgroup=true
killasgroup=true
priority=300
redirect_stderr=true
stdout_logfile=/var/log/supervisor/webplatform-celery-beat.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 31
say 31 changed
# step 32: service supervisor enable
{ timeout 300 systemctl enable 'supervisor'; } > "$log" 2>&1 < /dev/null || fail 32
say 32 changed
# step 33: service supervisor start
{ timeout 300 systemctl start 'supervisor'; } > "$log" 2>&1 < /dev/null || fail 33
pending_done 'supervisor'
say 33 changed
# step 34: service nginx reload
sh -c 'nginx -t' > "$log" 2>&1 < /dev/null || { r=$?; restore 23 '/etc/ssl/infra/app.crt'; restore 24 '/etc/ssl/infra/private/app.key'; restore 25 '/etc/nginx/sites-enabled/webplatform.conf'; pending_done 'nginx'; (exit $r) || fail 34; }
{ timeout 300 systemctl reload-or-restart 'nginx'; } > "$log" 2>&1 < /dev/null || fail 34
pending_done 'nginx'
say 34 changed
rm -rf "$R"
printf '@@infra\tdone\n'
