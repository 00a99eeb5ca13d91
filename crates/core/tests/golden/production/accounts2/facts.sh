export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -d /run/systemd/system ]; then init=systemd; else init=sysv; fi
printf 'init\t%s\n' "$init"
stat --printf 'stat\t%a\t%U\t%G\t%F\t%n\n' -- '/etc/ssl/infra' '/etc/ssl/infra/private' '/var/www/accounts' '/var/www/accounts/public' '/etc/hosts' '/etc/resolv.conf' '/etc/exim4/update-exim4.conf.conf' '/etc/mailname' '/etc/nginx/nginx.conf' '/etc/ssl/infra/accounts.crt' '/etc/ssl/infra/private/accounts.key' '/etc/nginx/sites-enabled/accounts.conf' 2>/dev/null
set --; for f in /etc/apt/sources.list.d/infra-*.sources /etc/apt/keyrings/infra-*.asc /etc/apt/keyrings/infra-*.gpg; do [ -f "$f" ] || continue; printf 'aptfile\t%s\n' "$f"; case $f in *.sources) set -- "$@" "$f";; esac; done
[ $# = 0 ] || grep -H -e '^URIs:' -e '^Suites:' -- "$@" 2>/dev/null | while IFS= read -r l; do printf 'aptfield\t%s\n' "$l"; done
grep -Fx -A3 -e 'Package: rsync' -e 'Package: ca-certificates' -e 'Package: curl' -e 'Package: less' -e 'Package: vim-tiny' -e 'Package: openssh-server' -e 'Package: exim4-daemon-light' -e 'Package: bsd-mailx' -e 'Package: nginx' /var/lib/dpkg/status 2>/dev/null | while read -r k a b c; do case $k in Package:) p=$a;; Status:) [ -n "$p" ] && printf 'pkg\t%s\t%s %s %s\n' "$p" "$a" "$b" "$c"; p=;; esac; done
sha256sum -- '/etc/hosts' '/etc/resolv.conf' '/etc/exim4/update-exim4.conf.conf' '/etc/mailname' '/etc/nginx/nginx.conf' '/etc/ssl/infra/accounts.crt' '/etc/ssl/infra/private/accounts.key' '/etc/nginx/sites-enabled/accounts.conf' 2>/dev/null | while read -r h f; do printf 'hash\t%s\t%s\n' "$h" "$f"; done
svc='ssh'; e=0; r=0; n=0
if [ "$init" = systemd ]; then
  systemctl cat "$svc" >/dev/null 2>&1 && e=1
  systemctl is-active --quiet "$svc" && r=1
  systemctl is-enabled --quiet "$svc" 2>/dev/null && n=1
else
  [ -x "/etc/init.d/$svc" ] && e=1
  [ $e = 1 ] && "/etc/init.d/$svc" status >/dev/null 2>&1 </dev/null && r=1
  for l in /etc/rc2.d/S??"$svc"; do [ -e "$l" ] && n=1; done
fi
printf 'svc\t%s\t%s\t%s\t%s\n' "$svc" $e $r $n
svc='exim4'; e=0; r=0; n=0
if [ "$init" = systemd ]; then
  systemctl cat "$svc" >/dev/null 2>&1 && e=1
  systemctl is-active --quiet "$svc" && r=1
  systemctl is-enabled --quiet "$svc" 2>/dev/null && n=1
else
  [ -x "/etc/init.d/$svc" ] && e=1
  [ $e = 1 ] && "/etc/init.d/$svc" status >/dev/null 2>&1 </dev/null && r=1
  for l in /etc/rc2.d/S??"$svc"; do [ -e "$l" ] && n=1; done
fi
printf 'svc\t%s\t%s\t%s\t%s\n' "$svc" $e $r $n
svc='nginx'; e=0; r=0; n=0
if [ "$init" = systemd ]; then
  systemctl cat "$svc" >/dev/null 2>&1 && e=1
  systemctl is-active --quiet "$svc" && r=1
  systemctl is-enabled --quiet "$svc" 2>/dev/null && n=1
else
  [ -x "/etc/init.d/$svc" ] && e=1
  [ $e = 1 ] && "/etc/init.d/$svc" status >/dev/null 2>&1 </dev/null && r=1
  for l in /etc/rc2.d/S??"$svc"; do [ -e "$l" ] && n=1; done
fi
printf 'svc\t%s\t%s\t%s\t%s\n' "$svc" $e $r $n
P="${INFRA_STATE_DIR:-/var/lib/infra}/pending"
[ -f "$P" ] && while read -r a b; do [ -n "$b" ] && printf 'pending\t%s\t%s\n' "$a" "$b"; done < "$P"
exit 0
