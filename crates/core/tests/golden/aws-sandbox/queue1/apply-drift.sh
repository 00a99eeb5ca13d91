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
# step 0: packages postgresql-client-15
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'postgresql-client-15' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
backup 1 '/etc/hosts'
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 133; printf %s '# Managed by infra (role base) for queue1.aws-sandbox.internal; computed from inventories/aws-sandbox.yaml.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters

# aws-sandbox hosts (aws-sandbox.internal)
(known after apply)	app1.aws-sandbox.internal app1
(known after apply)	app2.aws-sandbox.internal app2
(known after apply)	db1.aws-sandbox.internal db1
(known after apply)	mail.aws-sandbox.internal mail
(known after apply)	queue1.aws-sandbox.internal queue1
(known after apply)	salt.aws-sandbox.internal salt
(known after apply)	sessions1.aws-sandbox.internal sessions1
(known after apply)	source.aws-sandbox.internal source
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 1 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && mv -f "$tmp" '/etc/hosts'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 1 $r; }
say 1 changed
# step 2: service ssh start
{ timeout 300 service 'ssh' start; } > "$log" 2>&1 < /dev/null || fail 2
pending_done 'ssh'
say 2 changed
# step 3: file /usr/local/sbin/infra-rabbitmq-setup
backup 3 '/usr/local/sbin/infra-rabbitmq-setup'
f='/usr/local/sbin/infra-rabbitmq-setup'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 077; printf %s '#!/bin/sh
# Managed by infra (role queue). `check` exits 0 when there is nothing to do; `apply` creates the
# vhost and user webplatform with full permissions on that vhost and sets its password.
set -eu
NAME='\''webplatform'\''
PW='\''canary-rabbitmq_app_password'\''

has_vhost() { rabbitmqctl --silent list_vhosts name | grep -qx "$NAME"; }
has_user() { rabbitmqctl --silent list_users | awk -v n="$NAME" '\''$1 == n { f = 1 } END { exit !f }'\''; }
password_ok() { rabbitmqctl --silent authenticate_user "$NAME" "$PW" >/dev/null 2>&1; }
perms_ok() {
    rabbitmqctl --silent list_user_permissions "$NAME" \
        | awk -v n="$NAME" '\''$1 == n && $2 == ".*" && $3 == ".*" && $4 == ".*" { f = 1 } END { exit !f }'\''
}

case "${1:-}" in
    check)
        has_vhost && has_user && password_ok && perms_ok
        ;;
    apply)
        rabbitmqctl await_startup
        has_vhost || rabbitmqctl add_vhost "$NAME"
        if has_user; then
            rabbitmqctl change_password "$NAME" "$PW"
        else
            rabbitmqctl add_user "$NAME" "$PW"
        fi
        rabbitmqctl set_permissions -p "$NAME" "$NAME" '\''.*'\'' '\''.*'\'' '\''.*'\''
        ;;
    *)
        echo "usage: $0 check|apply" >&2
        exit 2
        ;;
esac
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 3 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && chmod 0700 "$tmp" && mv -f "$tmp" '/usr/local/sbin/infra-rabbitmq-setup'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 3 $r; }
say 3 changed
# step 4: file /usr/local/sbin/infra-postgres-setup
backup 4 '/usr/local/sbin/infra-postgres-setup'
f='/usr/local/sbin/infra-postgres-setup'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
tmp="$dir/.infra-$$.${f##*/}.tmp"; [ -e "$tmp" ] && rm -f "$tmp"
umask 077; printf %s '#!/bin/sh
# Managed by infra (role postgres). `check` exits 0 when there is nothing to do; `apply` does it:
#  - restarts the cluster if the running listen_addresses differs from postgresql.conf
#    (a reload does not apply it), or a reloaded setting is waiting for a restart;
#  - creates (or updates the password of) the role and database webplatform.
set -eu
NAME='\''webplatform'\''
LISTEN='\''localhost,(known after apply)'\''

psql_q() {
    runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"
}

needs_restart() {
    [ "$(psql_q '\''SHOW listen_addresses'\'')" != "$LISTEN" ] && return 0
    [ "$(psql_q '\''SELECT count(*) FROM pg_settings WHERE pending_restart'\'')" != "0" ] && return 0
    return 1
}

has_role() { [ "$(psql_q "SELECT 1 FROM pg_roles WHERE rolname = '\''$NAME'\''")" = "1" ]; }
has_db() { [ "$(psql_q "SELECT 1 FROM pg_database WHERE datname = '\''$NAME'\''")" = "1" ]; }

case "${1:-}" in
    check)
        ! needs_restart && has_role && has_db
        ;;
    apply)
        if needs_restart; then
            pg_ctlcluster 15 main restart
        fi
        runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v name="$NAME" <<'\''SQL'\''
SELECT format('\''CREATE ROLE %I LOGIN'\'', :'\''name'\'')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'\''name'\'') \gexec
SQL
        runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v name="$NAME" -v pw='\''canary-app_db_password'\'' <<'\''SQL'\''
SELECT format('\''ALTER ROLE %I PASSWORD %L'\'', :'\''name'\'', :'\''pw'\'') \gexec
SQL
        if ! has_db; then
            runuser -u postgres -- createdb --owner="$NAME" --encoding=UTF8 --template=template0 "$NAME"
        fi
        ;;
    *)
        echo "usage: $0 check|apply" >&2
        exit 2
        ;;
esac
' > "$tmp" 2>"$log"
rc=$?; umask 022; [ $rc = 0 ] || { rm -f "$tmp"; fail 4 $rc; }
{ { [ 'root':'root' = "$me" ] && ! [ -g "$dir" ]; } || chown 'root':'root' "$tmp" && chmod 0700 "$tmp" && mv -f "$tmp" '/usr/local/sbin/infra-postgres-setup'; } >> "$log" 2>&1 || { r=$?; rm -f "$tmp"; fail 4 $r; }
say 4 changed
# step 5: service postgresql restart
{ timeout 300 service 'postgresql' restart; } > "$log" 2>&1 < /dev/null || fail 5
pending_done 'postgresql'
say 5 changed
# step 6: command postgres role and database for the app
timeout 1800 sh -c '/usr/local/sbin/infra-postgres-setup apply' > "$log" 2>&1 < /dev/null || fail 6
say 6 changed
rm -rf "$R"
printf '@@infra\tdone\n'
