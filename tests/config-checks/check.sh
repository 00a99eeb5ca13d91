#!/usr/bin/env bash
# Validate rendered configuration files with the real programs' own checkers.
#
#   tests/config-checks/check.sh DIR
#
# DIR holds one folder per host, each a fake root (DIR/app1/etc/nginx/nginx.conf, ...).
# For every host and every known configuration found, the real program parses it and one line
# is printed:   ok    app1  nginx -t  etc/nginx/nginx.conf
#          or   FAIL  ...  followed by the checker's output, indented
#          or   skip  ...  followed by the reason (a skip never counts as passed)
# The last line is "N passed, M failed" (", K skipped" added when there were skips).
# Exit status: 1 if any check failed or if nothing at all was checked, else 0.
#
# How the files are shown to the programs: every check runs in its own private mount namespace
# (unshare -m) in which the host's fake root is laid over this machine's root with overlayfs:
#   /etc            = host's etc/ on top of this machine's /etc (a stock Debian 12 with the
#                     packages installed), writable, changes thrown away
#   /var            = the same, writable (host's var/ if any, over this machine's /var)
#   /srv, /opt, ... = same, read-only, for any other top-level folder the host has
#   /run, /var/log  = private empty copies of the folder skeletons (pid files and logs written
#                     by the checkers never reach the machine)
# So the rendered files are read at their real absolute paths: includes, include_dir, hba_file,
# key tables, ... resolve exactly as on the target host, with no text rewriting.
# The namespace also has its own, empty network stack (unshare -n): only a loopback interface,
# on which every private IPv4 address (10/8, 172.16/12, 192.168/16, 100.64/10) and every
# documentation address (192.0.2/24, 198.51.100/24, 203.0.113/24: example inventories use them)
# written anywhere in the host's tree is added. Servers can therefore bind the host's listen addresses exactly as
# configured (nginx -t binds its listen sockets, postfix refuses non-local inet_interfaces), and
# no packet can leave the namespace: nothing is ever sent to those addresses on a real network.
# Only what a check must change to run here (data directories, queues, sockets to talk to the
# server) is overridden, on the command line where the program allows it; each override is
# listed in the comment of its check.
#
# Needs root, util-linux unshare, overlayfs, iproute2, and the packages that .ci/run installs.
set -uo pipefail

SELF=$(readlink -f "$0")
LIB=$(dirname "$SELF")/lib
EXIM_ROOT=${INFRA_EXIM_ROOT:-/opt/infra-ci/exim4}
PYTHON=/usr/bin/python3   # Debian's python3, which has python3-supervisor; not pyenv's

# ---------------------------------------------------------------------------------------------
# Namespace plumbing
# ---------------------------------------------------------------------------------------------

# Copy the directory skeleton (dirs with owner/mode, and symlinks) of $1 into $2; no files.
skeleton() {
  local src=$1 dst=$2 d
  mkdir -p "$dst"
  (cd "$src" && find . -xdev -maxdepth 3 \( -type d -o -type l \) -print0 2>/dev/null) |
    while IFS= read -r -d '' d; do
      [ "$d" = . ] && continue
      if [ -L "$src/$d" ]; then
        cp -P "$src/$d" "$dst/$d" 2>/dev/null || true
      else
        mkdir -p "$dst/$d"
        chown --reference="$src/$d" "$dst/$d" 2>/dev/null || true
        chmod --reference="$src/$d" "$dst/$d" 2>/dev/null || true
      fi
    done
  chown --reference="$src" "$dst"; chmod --reference="$src" "$dst"
}

# ns_run HOSTROOT CHECKDIR FUNC ARGS...: run FUNC (a function of this script) inside a private
# mount namespace showing HOSTROOT over /.
ns_run() {
  local hostroot=$1 cw=$2
  shift 2
  mkdir -p "$cw"
  cp -a "$WORK/skel/run" "$cw/run"
  cp -a "$WORK/skel/varlog" "$cw/varlog"
  mkdir -p "$cw/run/sshd" "$cw/run/lock"
  chmod 755 "$cw/run/sshd"
  INFRA_CHECK_WORK=$WORK unshare -m -n --propagation private -- "$SELF" --in-ns "$hostroot" "$cw" "$@"
}

in_ns() {
  local hostroot=$1 cw=$2 d name
  shift 2
  mkdir -p "$cw/ovl/etc-upper" "$cw/ovl/etc-work"
  if [ -d "$hostroot/etc" ]; then
    mount -t overlay overlay \
      -o "lowerdir=$hostroot/etc:/etc,upperdir=$cw/ovl/etc-upper,workdir=$cw/ovl/etc-work" /etc
  else
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$cw/ovl/etc-upper,workdir=$cw/ovl/etc-work" /etc
  fi || { echo "cannot mount overlay on /etc"; exit 1; }
  for d in "$hostroot"/*/; do
    name=$(basename "$d")
    case $name in etc | var | proc | sys | dev | run | tmp | boot | lost+found) continue ;; esac
    [ -d "/$name" ] || continue
    mount -t overlay overlay -o "lowerdir=$hostroot/$name:/$name" "/$name" ||
      { echo "cannot mount overlay on /$name"; exit 1; }
  done
  # /var is writable like /etc (the host's var/ over this machine's, changes thrown away): a
  # check may have to make a directory that a role's `dirs:` makes on the host (see mkdir_note).
  mkdir -p "$cw/ovl/var-upper" "$cw/ovl/var-work"
  local lower=/var
  [ -d "$hostroot/var" ] && lower="$hostroot/var:/var"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$cw/ovl/var-upper,workdir=$cw/ovl/var-work" /var ||
    { echo "cannot mount overlay on /var"; exit 1; }
  mount --bind "$cw/run" /run || exit 1
  mount --bind "$cw/varlog" /var/log || exit 1
  # Private network stack: loopback up, plus the host's private IPv4 addresses.
  ip link set lo up || { echo "cannot bring up lo in the network namespace"; exit 1; }
  NS_ADDRS=$(host_addresses "$hostroot")
  for d in $NS_ADDRS; do ip addr add "$d/32" dev lo || exit 1; done
  "$@"
}

# Private-range and documentation-range IPv4 literals found in the host's files (other hosts' addresses included: they
# are harmless here, nothing connects to them).
host_addresses() {
  grep -rahoE '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}' "$1" 2>/dev/null |
    awk -F. '$1<=255 && $2<=255 && $3<=255 && $4<=255 &&
      ($1==10 || ($1==172 && $2>=16 && $2<=31) || ($1==192 && $2==168) || ($1==100 && $2>=64 && $2<=127) ||
       ($1==192 && $2==0 && $3==2) || ($1==198 && $2==51 && $3==100) || ($1==203 && $2==0 && $3==113))' |
    sort -u -t. -k1,1n -k2,2n -k3,3n -k4,4n | tr '\n' ' '
}

ns_note() {
  [ -n "${NS_ADDRS:-}" ] && echo "note: local in the private network namespace: ${NS_ADDRS% }"
  return 0
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
passed=0 failed=0 skipped=0

# result STATUS HOST CHECK FILE [OUTPUTFILE]
result() {
  local status=$1 host=$2 check=$3 file=$4 out=${5:-}
  case $status in
    ok) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    skip) skipped=$((skipped + 1)) ;;
  esac
  printf '%-5s %s  %s  %s\n' "$status" "$host" "$check" "$file"
  if [ -n "$out" ] && [ -s "$out" ]; then
    if [ "$status" = ok ]; then
      # On success only the notes (what was overridden or assumed) are shown.
      grep '^note: ' "$out" | sed 's/^/      /'
    else
      sed 's/^/      /' "$out"
    fi
  fi
}

# ---------------------------------------------------------------------------------------------
# Shared throwaway material
# ---------------------------------------------------------------------------------------------

# A throwaway self-signed certificate/key pair, used in place of TLS files that a config names
# but that are issued on the target host (Let's Encrypt, ...) and so are not in the rendered tree.
make_cert() {
  [ -s "$WORK/tls/cert.pem" ] && return 0
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=infra-config-check -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1
  openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out "$WORK/tls/dh.pem" >/dev/null 2>&1
  chmod 644 "$WORK/tls/cert.pem" "$WORK/tls/dh.pem"; chmod 600 "$WORK/tls/key.pem"
}

# place_tls KIND PATH [OWNER]: inside the namespace, create a missing TLS file under /etc (the
# writable overlay) from the throwaway pair. KIND: cert|key|dh. Prints a note.
place_tls() {
  local kind=$1 path=$2 owner=${3:-root}
  case $path in /etc/*) ;; *) return 1 ;; esac
  [ -e "$path" ] && return 0
  mkdir -p "$(dirname "$path")"
  case $kind in
    cert) cp "$WORK/tls/cert.pem" "$path" ;;
    key) cp "$WORK/tls/key.pem" "$path"; chmod 600 "$path" ;;
    dh) cp "$WORK/tls/dh.pem" "$path" ;;
  esac
  chown "$owner" "$path"
  echo "note: $path is not in the rendered tree: a throwaway $kind was put there"
}

# mkdir_note DIR WHAT: inside the namespace, make DIR (under the writable /var or /etc overlay)
# when it is missing: a directory that a role's `dirs:` makes on the host, which the rendered
# tree (files only) cannot show. Prints a note. Refused outside /var and /etc.
mkdir_note() {
  local dir=$1 what=$2
  [ -d "$dir" ] && return 0
  case $dir in /var/* | /etc/*) ;; *) return 1 ;; esac
  mkdir -p "$dir" || return 1
  echo "note: $dir ($what) is not in the rendered tree (a role's dirs: makes it): made here"
}

# stop_pid PID [SIGNAL]: signal a server we started, wait up to 10 s, then SIGKILL it.
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  kill "-$sig" "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# ---------------------------------------------------------------------------------------------
# nginx: nginx -t on the merged /etc/nginx.
# Overrides: none in the files. The stock sites-enabled/default of this machine is hidden unless
# the host ships its own (the fake root cannot express a deletion and the roles replace it).
# Missing ssl_certificate/_key/trusted/client/dhparam files under /etc get throwaway ones.
# Checks: full parse of nginx.conf and everything it includes, module directives, value
# syntax, certificate/key loading, duplicate listen/default_server, upstream host resolution
# (names must resolve here: a host's own etc/hosts is honoured; there is no DNS in the private
# network namespace), binding of every listen address. Warnings count as failures.
# ---------------------------------------------------------------------------------------------
ns_nginx() {
  local host_has_default=$1 f kind p
  if [ "$host_has_default" = no ] && [ -e /etc/nginx/sites-enabled/default ]; then
    rm -f /etc/nginx/sites-enabled/default
    echo "note: stock sites-enabled/default hidden"
  fi
  ns_note
  mkdir -p /var/log/nginx
  grep -rhoE '^[[:space:]]*(access_log|error_log)[[:space:]]+[^;[:space:]]+' /etc/nginx 2>/dev/null |
    awk '{print $2}' | sort -u | while read -r p; do
    case $p in off | syslog:* | stderr | memory:* | *'$'*) continue ;; esac
    mkdir_note "$(dirname "$p")" "directory of a log file" || true
  done
  grep -rhoE '^[[:space:]]*(ssl_certificate|ssl_certificate_key|ssl_trusted_certificate|ssl_client_certificate|ssl_dhparam)[[:space:]]+[^;]+' \
    /etc/nginx 2>/dev/null | sort -u | while read -r d p; do
    p=${p//\"/}; p=${p//\'/}
    case $p in *'$'* | data:* | engine:*) continue ;; esac
    case $d in
      ssl_certificate_key) kind=key ;;
      ssl_dhparam) kind=dh ;;
      *) kind=cert ;;
    esac
    place_tls "$kind" "$p" root
  done
  nginx -t -c /etc/nginx/nginx.conf -e /var/log/nginx/check-error.log > /run/nginx-check.out 2>&1
  local rc=$?
  cat /run/nginx-check.out
  if [ $rc -ne 0 ]; then return 1; fi
  # nginx -t exits 0 on warnings; count them, except stapling warnings about our throwaway cert.
  if grep -E '\[(warn|emerg|alert|crit|error)\]' /run/nginx-check.out |
    grep -vE 'ssl_stapling" ignored' | grep -q .; then
    echo "warnings are counted as failures"
    return 1
  fi
  return 0
}

check_nginx() {
  local host=$1 root=$2 cw=$3 file=etc/nginx/nginx.conf def=no
  [ -f "$root/$file" ] || file="etc/nginx (stock nginx.conf)"
  [ -e "$root/etc/nginx/sites-enabled/default" ] && def=yes
  if ns_run "$root" "$cw" ns_nginx "$def" > "$cw.out" 2>&1; then
    result ok "$host" "nginx -t" "$file" "$cw.out"
  else
    result FAIL "$host" "nginx -t" "$file" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: start the real server on the rendered postgresql.conf and pg_hba.conf.
# A throwaway data directory (initdb once per run, copied per host) is used.
# Overrides (command line, highest priority; the file's own values are still parsed and
# validated): data_directory, unix_socket_directories (where we connect), external_pid_file,
# logging_collector=off and log_destination=stderr (so errors come back to us).
# listen_addresses is kept: the server binds the configured addresses in the private network
# namespace. Missing ssl_cert_file/ssl_key_file/ssl_ca_file under /etc get throwaway ones.
# Checks: postgresql.conf and its include/include_dir files (unknown parameters, bad values,
# shared_preload_libraries that cannot load, locales...): postgres -C and startup are FATAL on
# any error; pg_file_settings is queried for errors. pg_hba.conf (and pg_ident.conf): the
# postmaster refuses to start on an invalid pg_hba.conf; pg_hba_file_rules and
# pg_ident_file_mappings (pg_ident errors are only logged at startup) are queried too.
# ---------------------------------------------------------------------------------------------
pg_template() {
  local ver=$1 bin=/usr/lib/postgresql/$1/bin
  [ -d "$WORK/pgtemplate-$ver" ] && return 0
  mkdir -p "$WORK/pginit"; chown postgres "$WORK/pginit"
  runuser -u postgres -- "$bin/initdb" -D "$WORK/pginit/data-$ver" -A trust -U postgres \
    --no-sync -E UTF8 --locale=C.UTF-8 > "$WORK/pginit/initdb-$ver.log" 2>&1 || {
    cat "$WORK/pginit/initdb-$ver.log"; return 1; }
  mv "$WORK/pginit/data-$ver" "$WORK/pgtemplate-$ver"
}

ns_postgres() {
  local ver=$1 cw=$2 bin=/usr/lib/postgresql/$1/bin
  local conf=/etc/postgresql/$ver/main/postgresql.conf data=$cw/data sock=$cw/sock
  local out_conf=$cw/conf.out out_hba=$cw/hba.out
  : > "$out_conf"; : > "$out_hba"
  echo skip > "$cw/hba.status"; echo FAIL > "$cw/conf.status"
  ns_note >> "$out_conf"
  cp -a "$WORK/pgtemplate-$ver" "$data"
  mkdir -p "$sock" /run/postgresql /var/log/postgresql
  chown postgres "$sock" /run/postgresql /var/log/postgresql "$cw"
  pg() { runuser -u postgres -- "$bin/postgres" -D "$data" -c config_file="$conf" -c data_directory="$data" "$@"; }
  # 1. parse: postgres -C fails on any error in the file or its includes.
  local v param hba ident ssl port
  for param in hba_file ident_file ssl port ssl_cert_file ssl_key_file ssl_ca_file; do
    if ! v=$(pg -C "$param" 2>>"$out_conf"); then
      echo "postgres -C $param failed" >> "$out_conf"
      echo "not checked: postgresql.conf did not parse" > "$out_hba"
      return 0
    fi
    printf -v "pg_$param" '%s' "$v"
  done
  # shellcheck disable=SC2154 # assigned by printf -v above
  hba=$pg_hba_file ident=$pg_ident_file ssl=$pg_ssl port=$pg_port
  echo "$hba" > "$cw/hba.path"
  if [ "$ssl" = on ]; then
    [ -n "$pg_ssl_cert_file" ] && place_tls cert "$pg_ssl_cert_file" postgres >> "$out_conf"
    [ -n "$pg_ssl_key_file" ] && place_tls key "$pg_ssl_key_file" postgres >> "$out_conf"
    [ -n "$pg_ssl_ca_file" ] && place_tls cert "$pg_ssl_ca_file" postgres >> "$out_conf"
  fi
  # 2. start.
  # setpriv execs, so $! is the postmaster itself (runuser would stay in between and not
  # forward our signals).
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin/postgres" -D "$data" \
    -c config_file="$conf" -c data_directory="$data" \
    -c unix_socket_directories="$sock" -c external_pid_file="$cw/ext.pid" \
    -c logging_collector=off -c log_destination=stderr > "$cw/server.log" 2>&1 &
  local pid=$! up=no
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if runuser -u postgres -- pg_isready -q -h "$sock" -p "$port" 2>/dev/null; then up=yes; break; fi
    sleep 0.1
  done
  if [ $up = no ]; then
    stop_pid "$pid" INT
    if grep -qE 'pg_hba\.conf|pg_ident\.conf|"'"$hba"'"|"'"$ident"'"' "$cw/server.log"; then
      echo ok > "$cw/conf.status"; echo FAIL > "$cw/hba.status"
      cat "$cw/server.log" >> "$out_hba"
    else
      cat "$cw/server.log" >> "$out_conf"
      echo "not checked: the server did not start" > "$out_hba"
    fi
    return 0
  fi
  # 3. ask the server what it thinks of its files.
  local q_conf q_hba
  q() { runuser -u postgres -- psql -X -q -A -t -h "$sock" -p "$port" -U postgres -d postgres -c "$1" 2>&1; }
  # Parameters we override on the command line show up as "setting could not be applied".
  if q_conf=$(q "select sourcefile||':'||sourceline||': '||coalesce(name,'')||': '||error from pg_file_settings where error is not null and not (error = 'setting could not be applied' and name in ('data_directory','unix_socket_directories','external_pid_file','logging_collector','log_destination'))"); then
    if [ -n "$q_conf" ]; then echo "$q_conf" >> "$out_conf"; else echo ok > "$cw/conf.status"; fi
    q_hba=$(q "select 'pg_hba line '||line_number||': '||error from pg_hba_file_rules where error is not null
               union all
               select 'pg_ident line '||line_number||': '||error from pg_ident_file_mappings where error is not null")
    if [ -n "$q_hba" ]; then echo "$q_hba" >> "$out_hba"; echo FAIL > "$cw/hba.status"; else echo ok > "$cw/hba.status"; fi
  else
    # The rendered pg_hba.conf does not let the postgres OS user in over the socket: startup
    # already proved both files load; say why the views were not read.
    echo ok > "$cw/conf.status"; echo ok > "$cw/hba.status"
    echo "note: could not connect to read pg_file_settings/pg_hba_file_rules ($q_conf); both files loaded at startup" | tee -a "$out_conf" >> "$out_hba"
  fi
  # (pg_isready probes while the server starts up are logged as FATAL: not ours to count.)
  grep -E '(WARNING|ERROR|FATAL|PANIC):' "$cw/server.log" |
    grep -v 'the database system is starting up' > "$cw/server.msgs"
  if [ -s "$cw/server.msgs" ]; then
    echo "server log has warnings/errors:" >> "$out_conf"
    cat "$cw/server.msgs" >> "$out_conf"
    echo FAIL > "$cw/conf.status"
  fi
  stop_pid "$pid" INT
  return 0
}

check_postgres() {
  local host=$1 root=$2 cw=$3 conf ver rel hbarel st
  for conf in "$root"/etc/postgresql/*/main/postgresql.conf; do
    [ -f "$conf" ] || continue
    ver=$(basename "$(dirname "$(dirname "$conf")")")
    rel=${conf#"$root"/}
    if [ ! -x "/usr/lib/postgresql/$ver/bin/postgres" ]; then
      echo "PostgreSQL $ver is not installed here" > "$cw.out"
      result FAIL "$host" "postgres $ver" "$rel" "$cw.out"
      continue
    fi
    if ! pg_template "$ver" > "$cw.out" 2>&1; then
      result FAIL "$host" "postgres config" "$rel" "$cw.out"; continue
    fi
    ns_run "$root" "$cw" ns_postgres "$ver" "$cw" > "$cw.out" 2>&1
    cat "$cw.out" >> "$cw/conf.out"
    st=$(cat "$cw/conf.status" 2>/dev/null || echo FAIL)
    result "$st" "$host" "postgres config" "$rel" "$cw/conf.out"
    hbarel=$(cat "$cw/hba.path" 2>/dev/null || echo "/etc/postgresql/$ver/main/pg_hba.conf")
    hbarel=${hbarel#/}
    st=$(cat "$cw/hba.status" 2>/dev/null || echo skip)
    result "$st" "$host" "postgres pg_hba" "$hbarel" "$cw/hba.out"
  done
}

# ---------------------------------------------------------------------------------------------
# Postfix: postconf (main.cf/master.cf parsing, unused-parameter warnings) and `postfix check`
# (which loads and type-checks every global parameter: bad numbers, booleans, time units...).
# Overrides, written into the namespace's copy of main.cf with postconf -e: queue_directory and
# data_directory (a private temp queue). inet_interfaces is kept: its addresses are local in the
# private network namespace.
# Lookup tables hash:/btree:/cdb:/lmdb: must have their source file and `postmap` must accept
# it; regexp:/pcre: tables are compiled with postmap -q. Every warning counts as a failure.
# ---------------------------------------------------------------------------------------------
ns_postfix() {
  local cw=$1 rc=0 m t p line
  local q=$cw/queue d=$cw/data
  mkdir -p "$q" "$d"; chown root:root "$q"; chown postfix "$d"; chmod 755 "$q"; chmod 700 "$d"
  # Parse first, untouched (unused-parameter and syntax warnings).
  postconf -n > "$cw/postconf.out" 2> "$cw/postconf.err" || rc=1
  ns_note
  postconf -e "queue_directory=$q" "data_directory=$d" 2>>"$cw/postconf.err" || rc=1
  echo "note: queue_directory and data_directory point to a private temp queue"
  postconf -M > /dev/null 2>> "$cw/postconf.err" || rc=1
  postconf -P > /dev/null 2>> "$cw/postconf.err" || rc=1
  # postfix reports its own errors to stderr only when stderr is a terminal.
  script -qec "postfix check" /dev/null > "$cw/check.out" 2>&1 || rc=1
  tr -d '\r' < "$cw/check.out" >> "$cw/postconf.err"
  # Lookup tables named in main.cf (non-default values) and in master.cf -o overrides; alias
  # tables (alias_maps, alias_database, default or not) are built with postalias.
  local name value tool
  { postconf -n; postconf -P 2>/dev/null | sed 's#^[^/]*/[^/]*/##'; postconf alias_maps alias_database; } 2>/dev/null |
    while IFS= read -r line; do
      name=${line%% =*}; value=${line#*= }
      for m in $(grep -oE '(hash|btree|cdb|lmdb|dbm|regexp|pcre):/[^ ,]+' <<< "$value"); do
        echo "$name $m"
      done
    done | sort -u > "$cw/maps"
  while read -r name m; do
    t=${m%%:*}; p=${m#*:}
    tool=postmap
    case $name in alias_maps | alias_database) tool=postalias ;; esac
    if [ ! -f "$p" ]; then echo "$name: lookup table $m: $p does not exist" >> "$cw/postconf.err"; rc=1; continue; fi
    case $t in
      regexp | pcre) postmap -q infra-config-check "$m" > /dev/null 2>> "$cw/postconf.err" ;;
      *) $tool "$m" 2>> "$cw/postconf.err" || rc=1 ;;
    esac
  done < "$cw/maps"
  # Unique messages, minus the informational compatibility notice.
  sed 's#^/usr/sbin/##' "$cw/postconf.err" | awk '!seen[$0]++' | grep -vE 'backwards-compatible default settings|COMPATIBILITY_README|To disable backwards compatibility' > "$cw/msgs"
  cat "$cw/msgs"
  if grep -qiE 'warning:|fatal:|error' "$cw/msgs"; then rc=1; fi
  return $rc
}

check_postfix() {
  local host=$1 root=$2 cw=$3
  if ns_run "$root" "$cw" ns_postfix "$cw" > "$cw.out" 2>&1; then
    result ok "$host" "postfix check" etc/postfix/main.cf "$cw.out"
  else
    result FAIL "$host" "postfix check" etc/postfix/main.cf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# gdnsd: gdnsd -c /etc/gdnsd checkconf (config, plugins, and every zone file; it does not bind).
# ---------------------------------------------------------------------------------------------
ns_gdnsd() {
  gdnsd -c /etc/gdnsd checkconf 2>&1
}

check_gdnsd() {
  local host=$1 root=$2 cw=$3
  if ns_run "$root" "$cw" ns_gdnsd > "$cw.out" 2>&1; then
    result ok "$host" "gdnsd checkconf" etc/gdnsd/config "$cw.out"
  else
    result FAIL "$host" "gdnsd checkconf" etc/gdnsd/config "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# supervisor: supervisor's own ServerOptions.realize() on /etc/supervisor/supervisord.conf
# (the host's or the stock one) and everything it [include]s. See lib/supervisor_check.py for
# what is checked, relaxed (users/log dirs that the target creates) and added (unknown keys).
# ---------------------------------------------------------------------------------------------
ns_supervisor() {
  "$PYTHON" "$LIB/supervisor_check.py" /etc/supervisor/supervisord.conf 2>&1
}

check_supervisor() {
  local host=$1 root=$2 cw=$3 file=etc/supervisor/supervisord.conf
  [ -f "$root/$file" ] || file="etc/supervisor/conf.d/*.conf"
  if ns_run "$root" "$cw" ns_supervisor > "$cw.out" 2>&1; then
    result ok "$host" "supervisor parse" "$file" "$cw.out"
  else
    result FAIL "$host" "supervisor parse" "$file" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# MariaDB: `mariadbd --defaults-file=/etc/mysql/my.cnf --help --verbose` reads every option
# group the server reads (through !includedir) and fails on unknown variables and unparsable
# values; "Buffered warning" lines (values adjusted to range) count as failures too (not the
# ones about this machine: open-files limit, no MAC address in the private network namespace).
# The client groups are read by the real `mariadb` client, which fails on unknown options; it
# is pointed at a socket that does not exist (no network), and the expected "can't connect"
# error is the pass condition.
# ---------------------------------------------------------------------------------------------
ns_mariadb() {
  local cw=$1 rc=0
  mariadbd --defaults-file=/etc/mysql/my.cnf --help --verbose > "$cw/server.out" 2>&1 || rc=1
  grep -E '^\S+ \S+ [0-9]+ \[(ERROR|Warning)\]' "$cw/server.out" |
    grep -vE 'Could not increase number of max_open_files|Changed limits:|failed to retrieve the MAC address' > "$cw/server.msgs"
  [ $rc -ne 0 ] && echo "mariadbd --help --verbose failed"
  cat "$cw/server.msgs"
  [ -s "$cw/server.msgs" ] && rc=1
  mariadb --defaults-file=/etc/mysql/my.cnf --protocol=SOCKET --socket="$cw/no-such.sock" \
    --connect-timeout=1 -e 'select 1' > "$cw/client.out" 2>&1
  if ! grep -q "ERROR 2002" "$cw/client.out"; then
    echo "mariadb client rejected the [client] options:"
    cat "$cw/client.out"
    rc=1
  fi
  return $rc
}

check_mariadb() {
  local host=$1 root=$2 cw=$3 files
  files=$(cd "$root" && find etc/mysql -type f -name '*.cnf' 2>/dev/null | sort | tr '\n' ' ')
  if ns_run "$root" "$cw" ns_mariadb "$cw" > "$cw.out" 2>&1; then
    result ok "$host" "mariadbd --help --verbose" "${files% }" "$cw.out"
  else
    result FAIL "$host" "mariadbd --help --verbose" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# Redis: start the real redis-server on /etc/redis/redis.conf (and its includes), then PING it.
# Overrides (command line, applied after the file): unixsocket in a temp dir (where we PING),
# daemonize no, supervised no, dir/pidfile/logfile private, replicaof no one (a replica must not
# try to reach its primary). bind/port are kept: the addresses are local in the private network
# namespace. Missing tls-cert-file/tls-key-file/tls-ca-cert-file under /etc get throwaway ones.
# requirepass is read from the file for the PING.
# ---------------------------------------------------------------------------------------------
ns_redis() {
  local cw=$1 pass pid reply d p kind
  chmod 777 "$cw"
  ns_note
  grep -hoE '^[[:space:]]*tls-(cert-file|key-file|ca-cert-file|client-cert-file|client-key-file|dh-params-file)[[:space:]]+[^[:space:]]+' \
    /etc/redis/*.conf 2>/dev/null | sort -u | while read -r d p; do
    p=${p//\"/}
    case $d in *key-file) kind=key ;; tls-dh-params-file) kind=dh ;; *) kind=cert ;; esac
    place_tls "$kind" "$p" redis
  done
  redis-server /etc/redis/redis.conf \
    --unixsocket "$cw/redis.sock" --unixsocketperm 700 --daemonize no --supervised no \
    --dir "$cw" --pidfile "$cw/redis.pid" --logfile "" --replicaof no one > "$cw/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    [ -S "$cw/redis.sock" ] && break
    sleep 0.1
  done
  if ! [ -S "$cw/redis.sock" ] || ! kill -0 "$pid" 2>/dev/null; then
    stop_pid "$pid"
    cat "$cw/server.log"
    echo "redis-server did not start"
    return 1
  fi
  pass=$(grep -E '^[[:space:]]*requirepass[[:space:]]' /etc/redis/redis.conf | tail -n1 | awk '{print $2}' | sed 's/^"\(.*\)"$/\1/')
  reply=$(REDISCLI_AUTH=$pass redis-cli -s "$cw/redis.sock" ping 2>&1)
  redis-cli -s "$cw/redis.sock" ${pass:+-a "$pass"} --no-auth-warning shutdown nosave >/dev/null 2>&1
  stop_pid "$pid"
  echo "PING: $reply"
  if [ "$reply" = PONG ]; then return 0; fi
  grep -E '# |Warning|WARNING' "$cw/server.log" | head -20
  return 1
}

check_redis() {
  local host=$1 root=$2 cw=$3
  if ns_run "$root" "$cw" ns_redis "$cw" > "$cw.out" 2>&1; then
    result ok "$host" "redis-server + PING" etc/redis/redis.conf "$cw.out"
  else
    result FAIL "$host" "redis-server + PING" etc/redis/redis.conf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# memcached: Debian's /etc/memcached.conf is turned into a command line by the real wrapper
# (/usr/share/memcached/scripts/systemd-memcached-wrapper, what systemd runs), which execs the
# real memcached. We run that wrapper on the rendered file, unchanged (its -l addresses are local
# in the private network namespace, its pid file lands in the private /run), and require the
# server to stay up and answer "version" on the configured address/port (or unix socket).
# ---------------------------------------------------------------------------------------------
ns_memcached() {
  local cw=$1 pid reply target pidfile
  ns_note
  target=$("$PYTHON" "$LIB/memcached_target.py" /etc/memcached.conf) || return 1
  pidfile=${target##* }; target=${target% *}
  /usr/share/memcached/scripts/systemd-memcached-wrapper /etc/memcached.conf > "$cw/server.log" 2>&1 &
  pid=$!
  reply=
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    reply=$("$PYTHON" "$LIB/memcached_target.py" --version $target 2>/dev/null)
    case $reply in VERSION*) break ;; esac
    sleep 0.1
  done
  stop_pid "$pid"
  # The wrapper execs through sh: make sure memcached itself is gone too.
  [ "$pidfile" != - ] && [ -s "$pidfile" ] && stop_pid "$(cat "$pidfile")"
  cat "$cw/server.log"
  case $reply in
    VERSION*) echo "answered: $reply"; return 0 ;;
    *) echo "memcached did not start or did not answer"; return 1 ;;
  esac
}

check_memcached() {
  local host=$1 root=$2 cw=$3
  if ns_run "$root" "$cw" ns_memcached "$cw" > "$cw.out" 2>&1; then
    result ok "$host" "memcached (debian wrapper)" etc/memcached.conf "$cw.out"
  else
    result FAIL "$host" "memcached (debian wrapper)" etc/memcached.conf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# OpenDKIM: opendkim -n -x /etc/opendkim.conf: parses the file (unknown parameters, bad values)
# and opens the KeyTable/SigningTable/... data sets it names. Private key files are not read.
# ---------------------------------------------------------------------------------------------
ns_opendkim() {
  opendkim -n -x /etc/opendkim.conf 2>&1
}

check_opendkim() {
  local host=$1 root=$2 cw=$3
  if ns_run "$root" "$cw" ns_opendkim > "$cw.out" 2>&1; then
    result ok "$host" "opendkim -n" etc/opendkim.conf "$cw.out"
  else
    result FAIL "$host" "opendkim -n" etc/opendkim.conf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# sshd: sshd -t -f /etc/ssh/sshd_config (the host's, or the stock one whose
# `Include /etc/ssh/sshd_config.d/*.conf` picks up the rendered drop-ins). Host keys that are
# missing get throwaway ones (ssh-keygen -A, inside the namespace). Any output counts as failure
# (sshd -t prints deprecation/unsupported-option messages but still exits 0).
# ---------------------------------------------------------------------------------------------
ns_sshd() {
  ssh-keygen -A > /dev/null 2>&1
  local out rc
  out=$(/usr/sbin/sshd -t -f /etc/ssh/sshd_config 2>&1); rc=$?
  [ -n "$out" ] && echo "$out"
  [ $rc -eq 0 ] && [ -z "$out" ]
}

check_sshd() {
  local host=$1 root=$2 cw=$3 files
  files=$(cd "$root" && { [ -f etc/ssh/sshd_config ] && echo etc/ssh/sshd_config; ls etc/ssh/sshd_config.d/*.conf 2>/dev/null; } | tr '\n' ' ')
  if ns_run "$root" "$cw" ns_sshd > "$cw.out" 2>&1; then
    result ok "$host" "sshd -t" "${files% }" "$cw.out"
  else
    result FAIL "$host" "sshd -t" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# exim4 (Debian's update-exim4.conf.conf). exim4 conflicts with postfix, so it is not installed:
# .ci/run unpacks the exim4-base/-config/-daemon-light .debs into $EXIM_ROOT. In the namespace,
# /etc/exim4 = stock exim4-config files + the host's files; /etc/mailname = the host's (or the
# host folder's name, noted). The real update-exim4.conf (its EXIM= path pointed at the unpacked
# binary, nothing else changed) generates the configuration, and `exim4 -C generated -bV` parses
# it (all sections, ACLs, drivers, options). update-exim4.conf sources its .conf.conf as shell
# and silently ignores unknown keys or conftypes; we fail on keys the script never reads and on
# a dc_eximconfig_configtype it does not know (which it silently treats as "none"), and on any
# message it prints. Not detected (as exim itself says): errors inside string expansions.
# ---------------------------------------------------------------------------------------------
ns_exim4() {
  local cw=$1 host=$2 rc=0 key known conftype
  local ue4c=$EXIM_ROOT/usr/sbin/update-exim4.conf exim=$EXIM_ROOT/usr/sbin/exim4
  local saved=$cw/host-exim4
  # Stock files first, then the host's on top.
  cp -a /etc/exim4 "$saved"
  cp -a "$EXIM_ROOT/etc/exim4/." /etc/exim4/
  cp -a "$saved/." /etc/exim4/
  if [ ! -e /etc/mailname ]; then
    echo "$host.invalid" > /etc/mailname
    echo "note: no etc/mailname rendered: using $host.invalid"
  fi
  known=$(grep -oE '\bdc_[a-z_]+' "$ue4c" | sort -u | tr '\n' ' ')
  # Written by exim4-config's debconf script (not read by update-exim4.conf): accepted.
  known="$known dc_mailname_in_oh CFILEMODE ue4c_keepcomments"
  while IFS= read -r key; do
    case " $known " in *" $key "*) ;; *)
      echo "update-exim4.conf.conf: unknown key $key (update-exim4.conf ignores it)"; rc=1 ;;
    esac
  done < <(sed -nE 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=.*/\1/p' /etc/exim4/update-exim4.conf.conf)
  conftype=$( (. /etc/exim4/update-exim4.conf.conf >/dev/null 2>&1; echo "${dc_eximconfig_configtype:-}") )
  case $conftype in internet | smarthost | satellite | local | none) ;; *)
    echo "dc_eximconfig_configtype '$conftype' is not one update-exim4.conf knows"; rc=1 ;;
  esac
  sed "s#^EXIM=.*#EXIM=$exim#" "$ue4c" > "$cw/update-exim4.conf"
  LD_LIBRARY_PATH="$EXIM_ROOT/usr/lib/x86_64-linux-gnu" sh "$cw/update-exim4.conf" \
    -o "$cw/exim4.conf.generated" > "$cw/ue4c.out" 2>&1 || rc=1
  if [ -s "$cw/ue4c.out" ]; then cat "$cw/ue4c.out"; rc=1; fi
  if [ -f "$cw/exim4.conf.generated" ]; then
    local bvrc=0
    "$exim" -C "$cw/exim4.conf.generated" -bV > "$cw/bv.out" 2>&1 || bvrc=1
    # -bV prints the version banner; the environment-purging notice is exim's default.
    grep -vE 'purging the environment|use keep_environment' "$cw/bv.out" > "$cw/bv.msgs"
    if [ $bvrc -ne 0 ] || grep -qiE 'error|warning' "$cw/bv.msgs"; then
      rc=1
      awk '!seen[$0]++' "$cw/bv.msgs" | grep -vE '^(Exim version|Copyright|\(c\) |Berkeley DB|Support for|Lookups|Authenticators|Routers|Transports|Fixed never_users|Configure owner|Size of off_t)'
    fi
  else
    echo "update-exim4.conf produced no configuration"; rc=1
  fi
  return $rc
}

check_exim4() {
  local host=$1 root=$2 cw=$3 why=
  if [ ! -x "$EXIM_ROOT/usr/sbin/exim4" ]; then
    why="exim4 is not unpacked in $EXIM_ROOT (it conflicts with postfix; .ci/run unpacks it)"
  elif ! getent passwd Debian-exim > /dev/null; then
    why="user Debian-exim does not exist (exim4 refuses to run; .ci/run creates it)"
  fi
  if [ -n "$why" ]; then
    echo "$why" > "$cw.out"
    result skip "$host" "update-exim4.conf + exim4 -bV" etc/exim4/update-exim4.conf.conf "$cw.out"
    return
  fi
  if ns_run "$root" "$cw" ns_exim4 "$cw" "$host" > "$cw.out" 2>&1; then
    result ok "$host" "update-exim4.conf + exim4 -bV" etc/exim4/update-exim4.conf.conf "$cw.out"
  else
    result FAIL "$host" "update-exim4.conf + exim4 -bV" etc/exim4/update-exim4.conf.conf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ: RabbitMQ's own boot-time config generation (rabbit_prelaunch_conf, Cuttlefish,
# the schemas of every installed plugin) on /etc/rabbitmq/rabbitmq.conf + conf.d/*.conf +
# advanced.config, and enabled_plugins checked against the installed plugins. No broker and no
# Erlang distribution (epmd) is started. See lib/rabbitmq_check.escript.
# rabbitmq-env.conf is sourced by /bin/sh (rabbitmq-env): checked with `sh -n` (syntax only).
# ---------------------------------------------------------------------------------------------
ns_rabbitmq() {
  local plugins conf ep=- adv=- f
  plugins=$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins 2>/dev/null | sort -V | tail -n1)
  local confs=()
  [ -f /etc/rabbitmq/rabbitmq.conf ] && confs+=(/etc/rabbitmq/rabbitmq.conf)
  for f in /etc/rabbitmq/conf.d/*; do [ -f "$f" ] && confs+=("$f"); done
  [ -f /etc/rabbitmq/enabled_plugins ] && ep=/etc/rabbitmq/enabled_plugins
  [ -f /etc/rabbitmq/advanced.config ] && adv=/etc/rabbitmq/advanced.config
  local rc=0
  if [ -f /etc/rabbitmq/rabbitmq-env.conf ]; then
    sh -n /etc/rabbitmq/rabbitmq-env.conf 2>&1 || { echo "rabbitmq-env.conf: sh -n failed"; rc=1; }
  fi
  HOME=/run escript "$LIB/rabbitmq_check.escript" "$plugins" "$ep" "$adv" "${confs[@]}" 2>&1 || rc=1
  return $rc
}

check_rabbitmq() {
  local host=$1 root=$2 cw=$3 files
  files=$(cd "$root" && find etc/rabbitmq -type f \( -name rabbitmq.conf -o -path 'etc/rabbitmq/conf.d/*' -o -name enabled_plugins -o -name advanced.config -o -name rabbitmq-env.conf \) 2>/dev/null | sort | tr '\n' ' ')
  if ! ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins > /dev/null 2>&1 || ! command -v escript > /dev/null; then
    echo "rabbitmq-server is not installed here" > "$cw.out"
    result skip "$host" "rabbitmq cuttlefish" "${files% }" "$cw.out"
    return
  fi
  if ns_run "$root" "$cw" ns_rabbitmq > "$cw.out" 2>&1; then
    result ok "$host" "rabbitmq cuttlefish" "${files% }" "$cw.out"
  else
    result FAIL "$host" "rabbitmq cuttlefish" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# Keystone (examples/gwm): /etc/keystone/keystone.conf and each domain file
# /etc/keystone/domains/keystone.<domain>.conf.
#  1. oslo-config-validator with keystone's option namespaces (and the oslo libraries' it
#     loads): every section/option must be one keystone knows (a misspelt option is an error,
#     where keystone itself would silently ignore it).
#  2. keystone's own loader (keystone.conf.configure + CONF(), as keystone-manage does) on the
#     file, then every registered option of every group is read: a value of the wrong type or
#     outside its choices fails here. Domain files are loaded the way keystone loads them (a
#     private ConfigOpts with the identity and ldap groups) and their options read too.
# Overrides: none (the files are only parsed; no database or LDAP server is contacted).
# ---------------------------------------------------------------------------------------------
ns_keystone() {
  local rc=0 f
  local ns=(--namespace keystone --namespace oslo.log --namespace oslo.db --namespace oslo.policy
    --namespace oslo.cache --namespace oslo.middleware --namespace oslo.messaging --namespace osprofiler)
  oslo-config-validator "${ns[@]}" --input-file /etc/keystone/keystone.conf 2>&1 || rc=1
  for f in /etc/keystone/domains/keystone.*.conf; do
    [ -f "$f" ] || continue
    oslo-config-validator --namespace keystone --input-file "$f" 2>&1 || rc=1
  done
  "$PYTHON" - /etc/keystone/keystone.conf /etc/keystone/domains/keystone.*.conf <<'PY' 2>&1 || rc=1
import sys, warnings
warnings.simplefilter("ignore")
from oslo_config import cfg
import keystone.conf
from keystone.conf import opts as keystone_opts

def read_all(conf, only=None):
    """Reads every option keystone registers (of the groups in `only`): values are converted."""
    for group, options in keystone_opts.list_opts():
        name = group if isinstance(group, str) else getattr(group, "name", "DEFAULT")
        if only and name not in only:
            continue
        node = conf if name in (None, "DEFAULT") else conf[name]
        for opt in options:
            node[opt.dest]

main, domains = sys.argv[1], [d for d in sys.argv[2:] if not d.endswith("*.conf")]
try:
    conf = keystone.conf.CONF
    keystone.conf.configure(conf)
    conf(args=[], project="keystone", default_config_files=[main])
    read_all(conf)
    for d in domains:
        dc = cfg.ConfigOpts()
        keystone.conf.configure(conf=dc)
        dc(args=[], project="keystone", default_config_files=[d])
        read_all(dc, {"identity", "ldap"})
        print(f"{d}: identity driver {dc.identity.driver}")
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
print(f"keystone.conf: every option read with its type; {len(domains)} domain file(s)")
PY
  return $rc
}

check_keystone() {
  local host=$1 root=$2 cw=$3 files
  files=$(cd "$root" && find etc/keystone -maxdepth 2 -name '*.conf' -path 'etc/keystone/*' 2>/dev/null | grep -E '^etc/keystone/(keystone\.conf|domains/keystone\..+\.conf)$' | sort | tr '\n' ' ')
  if ! command -v oslo-config-validator > /dev/null || ! "$PYTHON" -c 'import keystone.conf' 2> /dev/null; then
    echo "keystone is not installed here (.ci/run installs it)" > "$cw.out"
    result skip "$host" "keystone (oslo-config-validator + loader)" "${files% }" "$cw.out"
    return
  fi
  if ns_run "$root" "$cw" ns_keystone > "$cw.out" 2>&1; then
    result ok "$host" "keystone (oslo-config-validator + loader)" "${files% }" "$cw.out"
  else
    result FAIL "$host" "keystone (oslo-config-validator + loader)" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# slapd (examples/gwm): slapd -Tt (slaptest) -u -f /etc/ldap/slapd.conf: parses the whole file
# (schemas it includes, modules it loads, backends, indexes, ACLs, limits).
# Overrides (only so that the test can run here): -u (dry run: the database is not opened); the
# pid/args files' folders (in the private /run) and each missing `directory` the file names (on
# a tmpfs over its parent, in the private mount namespace) are created empty: slaptest requires
# them to exist. Noted.
# ---------------------------------------------------------------------------------------------
ns_slapd() {
  local d
  for d in $(sed -nE 's/^[[:space:]]*(pidfile|argsfile)[[:space:]]+([^[:space:]]+).*/\2/p' /etc/ldap/slapd.conf); do
    case $d in /run/* | /var/run/*) mkdir -p "$(dirname "$d")" ;; esac   # the private /run
  done
  # A missing database directory is made on a tmpfs over its parent, mounted in this private
  # namespace only (nothing reaches the machine's /var).
  for d in $(sed -nE 's/^[[:space:]]*directory[[:space:]]+"?([^"[:space:]]+)"?.*/\1/p' /etc/ldap/slapd.conf); do
    if [ ! -d "$d" ] && [ -d "$(dirname "$d")" ]; then
      mount -t tmpfs -o mode=0755 tmpfs "$(dirname "$d")" && mkdir "$d" &&
        echo "note: database directory $d created empty (on a private tmpfs) for the test"
    fi
  done
  slapd -Tt -u -f /etc/ldap/slapd.conf 2>&1
}

check_slapd() {
  local host=$1 root=$2 cw=$3
  if ! command -v slapd > /dev/null; then
    echo "slapd is not installed here (.ci/run installs it)" > "$cw.out"
    result skip "$host" "slapd -Tt" etc/ldap/slapd.conf "$cw.out"
    return
  fi
  if ns_run "$root" "$cw" ns_slapd > "$cw.out" 2>&1; then
    result ok "$host" "slapd -Tt" etc/ldap/slapd.conf "$cw.out"
  else
    result FAIL "$host" "slapd -Tt" etc/ldap/slapd.conf "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# JavaScript and JSON (EGF2's Node.js services and their JSON configs, examples/egf2): every
# *.js file of the host's tree through `node --check` (Node.js's own parser, nothing run), every
# *.json file through `python3 -m json.tool` (the JSON a service's JSON.parse reads), and an
# Elasticsearch elasticsearch.yml through PyYAML's safe_load (Elasticsearch itself is not in
# Debian: its own parser cannot run here). No namespace needed: nothing is started, the files
# are read where they were rendered.
# ---------------------------------------------------------------------------------------------
check_js_json() {
  local host=$1 root=$2 cw=$3 f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$root"/}
    if node --check "$f" > "$cw.out" 2>&1; then
      result ok "$host" "node --check" "$rel" "$cw.out"
    else
      result FAIL "$host" "node --check" "$rel" "$cw.out"
    fi
  done < <(find "$root" -type f -name '*.js' -print0 | sort -z)
  while IFS= read -r -d '' f; do
    rel=${f#"$root"/}
    if "$PYTHON" -m json.tool "$f" > /dev/null 2> "$cw.out"; then
      result ok "$host" "json.tool" "$rel" "$cw.out"
    else
      result FAIL "$host" "json.tool" "$rel" "$cw.out"
    fi
  done < <(find "$root" -type f -name '*.json' -print0 | sort -z)
  f=$root/etc/elasticsearch/elasticsearch.yml
  if [ -f "$f" ]; then
    if "$PYTHON" -c 'import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert isinstance(doc, dict), "not a mapping"
for k in ("cluster.name", "node.name"):
    assert k in doc, "missing " + k' "$f" > "$cw.out" 2>&1; then
      result ok "$host" "yaml (elasticsearch)" "${f#"$root"/}" "$cw.out"
    else
      result FAIL "$host" "yaml (elasticsearch)" "${f#"$root"/}" "$cw.out"
    fi
  fi
}

# ---------------------------------------------------------------------------------------------
# Python settings (Synnefo's /etc/synnefo/*.conf, read in name order by synnefo.settings with
# exec): `python3 -m py_compile` on each, i.e. Python's own parser and compiler (syntax only: the
# files import Synnefo's modules, which are not installed here). The byte code goes to a private
# cache directory, never beside the rendered files.
# ---------------------------------------------------------------------------------------------
check_python_settings() {
  local host=$1 root=$2 cw=$3 files f rc=0
  files=$(cd "$root" && find etc/synnefo -maxdepth 1 -type f -name '*.conf' 2>/dev/null | sort | tr '\n' ' ')
  mkdir -p "$cw"
  : > "$cw.out"
  for f in $files; do
    PYTHONPYCACHEPREFIX="$cw/pycache" "$PYTHON" -m py_compile "$root/$f" >> "$cw.out" 2>&1 || rc=1
  done
  sed -i "s#$root/##g" "$cw.out"
  if [ $rc -eq 0 ]; then
    result ok "$host" "python3 -m py_compile" "${files% }" "$cw.out"
  else
    result FAIL "$host" "python3 -m py_compile" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# gunicorn: every rendered gunicorn.conf.py is executed as `gunicorn --config` does and each
# setting goes through gunicorn's own validators (Config.set); names gunicorn does not know
# fail (it ignores them). Run in the namespace, so paths resolve as on the host. See
# lib/gunicorn_check.py for what is relaxed (chdir, user, group that the target host makes).
# ---------------------------------------------------------------------------------------------
ns_gunicorn() {
  "$PYTHON" "$LIB/gunicorn_check.py" "$@" 2>&1
}

check_gunicorn() {
  local host=$1 root=$2 cw=$3 files
  files=$(cd "$root" && find etc -type f -name 'gunicorn.conf.py' 2>/dev/null | sort | tr '\n' ' ')
  if ! "$PYTHON" -c 'import gunicorn.config' > /dev/null 2>&1; then
    echo "gunicorn is not installed here (Debian's gunicorn, which .ci/run installs)" > "$cw.out"
    result skip "$host" "gunicorn config" "${files% }" "$cw.out"
    return
  fi
  # shellcheck disable=SC2086 # paths made by find under etc/: no spaces
  if ns_run "$root" "$cw" ns_gunicorn $(printf '/%s ' $files) > "$cw.out" 2>&1; then
    result ok "$host" "gunicorn config" "${files% }" "$cw.out"
  else
    result FAIL "$host" "gunicorn config" "${files% }" "$cw.out"
  fi
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
main() {
  if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 DIR   (DIR has one fake-root folder per host)" >&2
    exit 2
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root (mount namespaces, overlayfs, running daemons as their users)" >&2
    exit 2
  fi
  local dir host root n=0
  dir=$(readlink -f "$1")
  WORK=$(mktemp -d /tmp/infra-config-check.XXXXXX)
  chmod 755 "$WORK"
  trap 'rm -rf "$WORK"' EXIT
  skeleton /run "$WORK/skel/run"
  skeleton /var/log "$WORK/skel/varlog"
  make_cert

  for root in "$dir"/*/; do
    root=${root%/}
    host=$(basename "$root")
    n=$((n + 1))
    local cw="$WORK/h$n"
    [ -f "$root/etc/nginx/nginx.conf" ] || compgen -G "$root/etc/nginx/sites-enabled/*" > /dev/null ||
      compgen -G "$root/etc/nginx/conf.d/*.conf" > /dev/null && check_nginx "$host" "$root" "$cw-nginx"
    compgen -G "$root/etc/postgresql/*/main/postgresql.conf" > /dev/null && check_postgres "$host" "$root" "$cw-pg"
    [ -f "$root/etc/postfix/main.cf" ] && check_postfix "$host" "$root" "$cw-postfix"
    [ -f "$root/etc/gdnsd/config" ] && check_gdnsd "$host" "$root" "$cw-gdnsd"
    [ -f "$root/etc/supervisor/supervisord.conf" ] || compgen -G "$root/etc/supervisor/conf.d/*.conf" > /dev/null &&
      check_supervisor "$host" "$root" "$cw-supervisor"
    [ -n "$(find "$root/etc/mysql" -name '*.cnf' 2>/dev/null | head -n1)" ] && check_mariadb "$host" "$root" "$cw-mariadb"
    [ -f "$root/etc/redis/redis.conf" ] && check_redis "$host" "$root" "$cw-redis"
    [ -f "$root/etc/memcached.conf" ] && check_memcached "$host" "$root" "$cw-memcached"
    [ -f "$root/etc/opendkim.conf" ] && check_opendkim "$host" "$root" "$cw-opendkim"
    [ -f "$root/etc/ssh/sshd_config" ] || compgen -G "$root/etc/ssh/sshd_config.d/*.conf" > /dev/null &&
      check_sshd "$host" "$root" "$cw-sshd"
    [ -f "$root/etc/exim4/update-exim4.conf.conf" ] && check_exim4 "$host" "$root" "$cw-exim4"
    [ -f "$root/etc/rabbitmq/rabbitmq.conf" ] || compgen -G "$root/etc/rabbitmq/conf.d/*" > /dev/null &&
      check_rabbitmq "$host" "$root" "$cw-rabbitmq"
    [ -f "$root/etc/keystone/keystone.conf" ] && check_keystone "$host" "$root" "$cw-keystone"
    [ -f "$root/etc/ldap/slapd.conf" ] && check_slapd "$host" "$root" "$cw-slapd"
    check_js_json "$host" "$root" "$cw-js"
    compgen -G "$root/etc/synnefo/*.conf" > /dev/null && check_python_settings "$host" "$root" "$cw-python"
    [ -n "$(find "$root/etc" -type f -name gunicorn.conf.py 2>/dev/null | head -n1)" ] &&
      check_gunicorn "$host" "$root" "$cw-gunicorn"
  done

  if [ $((passed + failed)) -eq 0 ]; then
    echo "no checkable configuration found under $dir (or every check was skipped)"
  fi
  if [ $skipped -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
  else
    echo "$passed passed, $failed failed"
  fi
  if [ $failed -gt 0 ] || [ $((passed + failed)) -eq 0 ]; then exit 1; fi
  exit 0
}

if [ "${1:-}" = --in-ns ]; then
  shift
  WORK=$INFRA_CHECK_WORK
  in_ns "$@"
  exit $?
fi
main "$@"
