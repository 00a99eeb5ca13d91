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
# step 0: volume /var/lib/elasticsearch
dev='/dev/xvdf'; n=0; while [ ! -b "$dev" ] && [ $n -lt 120 ]; do sleep 1; n=$((n+1)); done
if [ ! -b "$dev" ]; then echo "no block device $dev: is the volume attached?" > "$log"; fail 0 1; fi
if ! blkid -o value -s TYPE "$dev" >/dev/null 2>&1; then
  mkfs -t 'ext4' -q "$dev" > "$log" 2>&1 || fail 0
  if [ -d '/var/lib/elasticsearch' ] && [ -n "$(ls -A '/var/lib/elasticsearch')" ]; then
    t=$(mktemp -d) && mount -t 'ext4' "$dev" "$t" && cp -a '/var/lib/elasticsearch'/. "$t"/ && umount "$t" && rmdir "$t" || fail 0
  fi
fi
mkdir -p '/var/lib/elasticsearch' && uuid=$(blkid -o value -s UUID "$dev") || fail 0
grep -q "^UUID=$uuid " /etc/fstab 2>/dev/null || printf 'UUID=%s %s %s defaults,nofail 0 2\n' "$uuid" '/var/lib/elasticsearch' 'ext4' >> /etc/fstab || fail 0
mount '/var/lib/elasticsearch' > "$log" 2>&1 || mount -t 'ext4' "$dev" '/var/lib/elasticsearch' > "$log" 2>&1 || fail 0
say 0 changed
# step 1: apt source elastic-8
mkdir -p /etc/apt/keyrings /etc/apt/sources.list.d
f='/etc/apt/keyrings/infra-elastic-8.asc'; dest_ok 1 "$f" root root 0
backup '1.key' "$f"
printf %s '-----BEGIN PGP PUBLIC KEY BLOCK-----
Version: GnuPG v2.0.14 (GNU/Linux)

mQENBFI3HsoBCADXDtbNJnxbPqB1vDNtCsqhe49vFYsZN9IOZsZXgp7aHjh6CJBD
A+bGFOwyhbd7at35jQjWAw1O3cfYsKAmFy+Ar3LHCMkV3oZspJACTIgCrwnkic/9
CUliQe324qvObU2QRtP4Fl0zWcfb/S8UYzWXWIFuJqMvE9MaRY1bwUBvzoqavLGZ
j3SF1SPO+TB5QrHkrQHBsmX+Jda6d4Ylt8/t6CvMwgQNlrlzIO9WT+YN6zS+sqHd
1YK/aY5qhoLNhp9G/HxhcSVCkLq8SStj1ZZ1S9juBPoXV1ZWNbxFNGwOh/NYGldD
2kmBf3YgCqeLzHahsAEpvAm8TBa7Q9W21C8vABEBAAG0RUVsYXN0aWNzZWFyY2gg
KEVsYXN0aWNzZWFyY2ggU2lnbmluZyBLZXkpIDxkZXZfb3BzQGVsYXN0aWNzZWFy
Y2gub3JnPokBOAQTAQIAIgUCUjceygIbAwYLCQgHAwIGFQgCCQoLBBYCAwECHgEC
F4AACgkQ0n1mbNiOQrRzjAgAlTUQ1mgo3nK6BGXbj4XAJvuZDG0HILiUt+pPnz75
nsf0NWhqR4yGFlmpuctgCmTD+HzYtV9fp9qW/bwVuJCNtKXk3sdzYABY+Yl0Cez/
7C2GuGCOlbn0luCNT9BxJnh4mC9h/cKI3y5jvZ7wavwe41teqG14V+EoFSn3NPKm
TxcDTFrV7SmVPxCBcQze00cJhprKxkuZMPPVqpBS+JfDQtzUQD/LSFfhHj9eD+Xe
8d7sw+XvxB2aN4gnTlRzjL1nTRp0h2/IOGkqYfIG9rWmSLNlxhB2t+c0RsjdGM4/
eRlPWylFbVMc5pmDpItrkWSnzBfkmXL3vO2X3WvwmSFiQbkBDQRSNx7KAQgA5JUl
zcMW5/cuyZR8alSacKqhSbvoSqqbzHKcUQZmlzNMKGTABFG1yRx9r+wa/fvqP6OT
RzRDvVS/cycws8YX7Ddum7x8uI95b9ye1/Xy5noPEm8cD+hplnpU+PBQZJ5XJ2I+
1l9Nixx47wPGXeClLqcdn0ayd+v+Rwf3/XUJrvccG2YZUiQ4jWZkoxsA07xx7Bj+
Lt8/FKG7sHRFvePFU0ZS6JFx9GJqjSBbHRRkam+4emW3uWgVfZxuwcUCn1ayNgRt
KiFv9jQrg2TIWEvzYx9tywTCxc+FFMWAlbCzi+m4WD+QUWWfDQ009U/WM0ks0Kww
EwSk/UDuToxGnKU2dQARAQABiQEfBBgBAgAJBQJSNx7KAhsMAAoJENJ9ZmzYjkK0
c3MIAIE9hAR20mqJWLcsxLtrRs6uNF1VrpB+4n/55QU7oxA1iVBO6IFu4qgsF12J
TavnJ5MLaETlggXY+zDef9syTPXoQctpzcaNVDmedwo1SiL03uMoblOvWpMR/Y0j
6rm7IgrMWUDXDPvoPGjMl2q1iTeyHkMZEyUJ8SKsaHh4jV9wp9KmC8C+9CwMukL7
vM5w8cgvJoAwsp3Fn59AxWthN3XJYcnMfStkIuWgR7U2r+a210W6vnUxU4oN0PmM
cursYPyeV0NX/KQeUeNMwGTFB6QHS/anRaGQewijkrYYoTNtfllxIu9XYmiBERQ/
qPDlGRlOgVTd9xUfHFkzB52c70E=
=92oX
-----END PGP PUBLIC KEY BLOCK-----
' | put_file "$f" root root 0644 2>"$log" || fail 1
f='/etc/apt/sources.list.d/infra-elastic-8.sources'; dest_ok 1 "$f" root root 0
backup '1.sources' "$f"
printf %s '# Managed by infra (role elastic): apt source elastic-8.
Types: deb
URIs: https://artifacts.elastic.co/packages/8.x/apt
Suites: stable
Components: main
Signed-By: /etc/apt/keyrings/infra-elastic-8.asc
' | put_file "$f" root root 0644 2>"$log" || fail 1
timeout 600 apt-get update -q --error-on=any -o Dir::Etc::sourcelist='/etc/apt/sources.list.d/infra-elastic-8.sources' -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 > "$R/"'1.apt' 2>&1; rc=$?
if [ $rc != 0 ] || grep -q -e '^E:' -e '^Err:' -e '^W:.*GPG' -e '^W:.*signature' -e '^W:.*NO_PUBKEY' -e '^W:.*not signed' -e '^W:.*Failed to fetch' "$R/"'1.apt'; then
  restore '1.key' '/etc/apt/keyrings/infra-elastic-8.asc'; restore '1.sources' '/etc/apt/sources.list.d/infra-elastic-8.sources'
  if grep -q -e NO_PUBKEY -e EXPKEYSIG -e BADSIG -e 'GPG error' -e 'not signed' -e 'signature' "$R/"'1.apt'; then why='apt source elastic-8 (https://artifacts.elastic.co/packages/8.x/apt stable) on host elastic1: the repository'\''s signature does not verify with the key /etc/apt/keyrings/infra-elastic-8.asc (templates/keys/elastic.asc): is it the key the repository is signed with? Nothing was installed.'; else why='apt source elastic-8 (https://artifacts.elastic.co/packages/8.x/apt stable) on host elastic1: apt-get update of this source failed (see apt'\''s lines above). Nothing was installed.'; fi
  { grep -e '^W:' -e '^E:' -e '^Err:' "$R/"'1.apt' || tail -n 20 "$R/"'1.apt'; printf '%s\n' "$why"; } > "$log"; fail 1 1
fi
say 1 changed
# step 2: packages rsync ca-certificates curl less vim-tiny openssh-server exim4-daemon-light bsd-mailx elasticsearch
prc=/usr/sbin/policy-rc.d; own=
if [ ! -e "$prc" ] || grep -qx '# infra: no daemon starts during apt-get' "$prc" 2>/dev/null; then
  printf '#!/bin/sh\n# infra: no daemon starts during apt-get\nexit 101\n' > "$prc" && chmod 755 "$prc" && own=1
fi
timeout 1800 apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold 'rsync' 'ca-certificates' 'curl' 'less' 'vim-tiny' 'openssh-server' 'exim4-daemon-light' 'bsd-mailx' 'elasticsearch' > "$log" 2>&1; rc=$?
[ -z "$own" ] || rm -f "$prc"
[ $rc = 0 ] || fail 2 $rc
say 2 changed
# step 3: file /etc/hosts
f='/etc/hosts'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 3 "$f" 'root' 'root' 0
backup 3 "$f"
printf %s '# Managed by infra (role base) for elastic1.production.wpdn; computed from inventories/production.yaml.
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
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 3
say 3 changed
# step 4: file /etc/resolv.conf
f='/etc/resolv.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 4 "$f" 'root' 'root' 0
backup 4 "$f"
printf %s '# Managed by infra (role base): the internal zone is served by the salt host'\''s gdnsd.
search production.wpdn
nameserver 10.10.1.10
nameserver 169.254.169.253
options timeout:2 attempts:2
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 4
say 4 changed
# step 5: service ssh enable
{ timeout 300 systemctl enable 'ssh'; } > "$log" 2>&1 < /dev/null || fail 5
say 5 changed
# step 6: service ssh start
{ timeout 300 systemctl start 'ssh'; } > "$log" 2>&1 < /dev/null || fail 6
pending_done 'ssh'
say 6 changed
# step 7: file /etc/exim4/update-exim4.conf.conf
f='/etc/exim4/update-exim4.conf.conf'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 7 "$f" 'root' 'root' 0
pending_add restart 'exim4'
backup 7 "$f"
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
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 7
say 7 changed
# step 8: file /etc/mailname
f='/etc/mailname'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 8 "$f" 'root' 'root' 0
pending_add restart 'exim4'
backup 8 "$f"
printf %s 'elastic1.production.wpdn
' | put_file "$f" 'root' 'root' 0644 2>"$log" || fail 8
say 8 changed
# step 9: service exim4 enable
{ timeout 300 systemctl enable 'exim4'; } > "$log" 2>&1 < /dev/null || fail 9
say 9 changed
# step 10: service exim4 start
{ timeout 300 systemctl start 'exim4'; } > "$log" 2>&1 < /dev/null || fail 10
pending_done 'exim4'
say 10 changed
# step 11: file /etc/elasticsearch/elasticsearch.yml
f='/etc/elasticsearch/elasticsearch.yml'; dir=${f%/*}; [ -d "$dir" ] || mkdir -p "$dir"
dest_ok 11 "$f" 'root' 'elasticsearch' 0
backup 11 "$f"
printf %s '# Managed by infra (role elastic) for elastic1.production.wpdn.
cluster.name: production
node.name: elastic1
path.data: /var/lib/elasticsearch
path.logs: /var/log/elasticsearch
network.host: [_local_, 10.10.1.40]
http.port: 9200
discovery.type: single-node
' | put_file "$f" 'root' 'elasticsearch' 0660 2>"$log" || fail 11
say 11 changed
rm -rf "$R"
printf '@@infra\tdone\n'
