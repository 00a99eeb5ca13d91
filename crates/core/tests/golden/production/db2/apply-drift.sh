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
# step 0: packages mariadb-client
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
timeout 1800 apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'mariadb-client' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 0 $rc
say 0 changed
# step 1: file /etc/hosts
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 1 "$f" 'root' 'root' 0
backup 1 "$f"
printf %s '# Managed by infra (role base) for db2.production.wpdn; computed from inventories/production.yaml.
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
# step 2: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 2
pending_done 'ssh'
say 2 changed
# step 3: dir /etc/mysql/tls
f='/etc/mysql/tls'; d=${f%/*}; [ -d "${d:-/}" ] || mkdir -p "$d"
dest_ok 3 "$f" 'root' 'mysql' 0
if [ -n "$as" ]; then setpriv --reuid='root' --regid='mysql' --clear-groups sh -c 'mkdir -p "$1" && chmod "$2" "$1"' sh "$f" 0750; else mkdir -p "$f" && chown -h 'root':'mysql' "$f" && chmod 0750 "$f"; fi > "$log" 2>&1 || fail 3
say 3 changed
# step 4: file /etc/mysql/tls/ca.pem
f='/etc/mysql/tls/ca.pem'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 4 "$f" 'root' 'mysql' 0
pending_add restart 'mariadb'
backup 4 "$f"
printf %s 'canary-mariadb_tls_ca_cert
' | put_file "$f" 'root' 'mysql' 0644 2>"$log" || fail 4
say 4 changed
# step 5: file /usr/local/sbin/infra-mariadb-setup
f='/usr/local/sbin/infra-mariadb-setup'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 5 "$f" 'root' 'root' 0
backup 5 "$f"
printf %s '#!/bin/sh
# Managed by infra (role db). `check` exits 0 when there is nothing to do; `apply` does it:
#  - root@localhost: unix_socket, or the root password from secrets;
#  - the replication user (vars.mariadb.replication_user) for every db host, REQUIRE SSL
#    (created with sql_log_bin=0 on each host, so moving masterdb needs no user changes);
#  - on the masterdb host: no replication source; on the others: replicate from masterdb over TLS.
# A new replica of a master that already holds data must be seeded first (mariabackup).
# No value is written into a comment (a newline in it would end the comment).
# Values reach sh and SQL only through the `sh` and `sql` filters; SQL that holds a password
# travels on the client'\''s stdin (a quoted here-document), never on a command line.
set -eu
MASTER_IP='\''10.10.1.20'\''
IS_MASTER=no
# SQL on stdin.
sql() { mariadb --protocol=socket -uroot -N -B; }

root_password_ok() {
    # The stored hash is the password'\''s (unix_socket lets root in whatever the password is).
    [ "$(sql <<'\''SQL'\''
SELECT COUNT(*) FROM mysql.global_priv WHERE User = '\''root'\'' AND Host = '\''localhost'\''
    AND JSON_SEARCH(Priv, '\''one'\'', PASSWORD('\''canary-mariadb_root_password'\'')) IS NOT NULL;
SQL
)" = "1" ]
}

repl_users_ok() {
    [ "$(sql <<'\''SQL'\''
SELECT COUNT(*) FROM mysql.user WHERE User = '\''repl'\'' AND ssl_type = '\''ANY'\''
    AND Host IN ('\''10.10.1.20'\'', '\''10.10.1.21'\'');
SQL
)" = '\''2'\'' ]
}

source_host() { echo '\''SHOW SLAVE STATUS\G'\'' | mariadb --protocol=socket -uroot | awk '\''$1 == "Master_Host:" { print $2 }'\''; }

source_ok() {
    if [ "$IS_MASTER" = yes ]; then
        [ -z "$(source_host)" ]
    else
        [ "$(source_host)" = "$MASTER_IP" ]
    fi
}

case "${1:-}" in
    check)
        root_password_ok && repl_users_ok && source_ok
        ;;
    apply)
        sql <<'\''SQL'\''
ALTER USER '\''root'\''@'\''localhost'\'' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('\''canary-mariadb_root_password'\'');
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS '\''repl'\''@'\''10.10.1.20'\'' IDENTIFIED BY '\''canary-mariadb_replication_password'\'' REQUIRE SSL;
ALTER USER '\''repl'\''@'\''10.10.1.20'\'' IDENTIFIED BY '\''canary-mariadb_replication_password'\'' REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO '\''repl'\''@'\''10.10.1.20'\'';
CREATE USER IF NOT EXISTS '\''repl'\''@'\''10.10.1.21'\'' IDENTIFIED BY '\''canary-mariadb_replication_password'\'' REQUIRE SSL;
ALTER USER '\''repl'\''@'\''10.10.1.21'\'' IDENTIFIED BY '\''canary-mariadb_replication_password'\'' REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO '\''repl'\''@'\''10.10.1.21'\'';
SQL
        if ! source_ok; then
            if [ "$IS_MASTER" = yes ]; then
                echo '\''STOP SLAVE; RESET SLAVE ALL;'\'' | sql
            else
                sql <<'\''SQL'\''
STOP SLAVE;
CHANGE MASTER TO MASTER_HOST = '\''10.10.1.20'\'', MASTER_PORT = 3306,
    MASTER_USER = '\''repl'\'', MASTER_PASSWORD = '\''canary-mariadb_replication_password'\'',
    MASTER_SSL = 1, MASTER_SSL_CA = '\''/etc/mysql/tls/ca.pem'\'',
    MASTER_USE_GTID = slave_pos;
START SLAVE;
SQL
            fi
        fi
        ;;
    *)
        echo "usage: $0 check|apply" >&2
        exit 2
        ;;
esac
' | put_file "$f" 'root' 'root' 0700 2>"$log" || fail 5
say 5 changed
# step 6: service mariadb restart
sh -c 'mariadbd --help --verbose' > "$log" 2>&1 < /dev/null || { r=$?; restore 4 '/etc/mysql/tls/ca.pem'; pending_done 'mariadb'; (exit $r) || fail 6; }
{ timeout 300 systemctl restart 'mariadb'; } > "$log" 2>&1 < /dev/null || fail 6
pending_done 'mariadb'
say 6 changed
# step 7: command mariadb root password, replication user and replication source
timeout 1800 sh -c '/usr/local/sbin/infra-mariadb-setup apply' > "$log" 2>&1 < /dev/null || fail 7
say 7 changed
rm -rf "$R"
printf '@@infra\tdone\n'
