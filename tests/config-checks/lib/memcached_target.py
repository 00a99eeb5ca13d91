"""Where to reach the memcached that Debian's wrapper starts from a memcached.conf.

  memcached_target.py CONF            -> prints "tcp HOST:PORT PIDFILE" or "unix PATH PIDFILE"
                                         (PIDFILE is "-" when none)
  memcached_target.py --version KIND WHERE -> sends "version", prints the reply

Reads the file the way /usr/share/memcached/scripts/systemd-memcached-wrapper does (comments
stripped, one or more options per line, non-option directives such as `logfile` ignored). Only
used to know where to send "version"; the file itself is parsed by the wrapper and memcached.
"""
import re
import shlex
import socket
import sys


def target(path):
    listen, port, sock, pidfile = None, "11211", None, "-"
    for raw in open(path, encoding="utf-8", errors="replace"):
        line = re.sub(r"(?<!\\)#[^#]*", "", raw).strip()
        if not line.startswith("-"):
            continue
        try:
            toks = shlex.split(line)
        except ValueError:
            continue
        i = 0
        while i < len(toks):
            t, nxt, step = toks[i], (toks[i + 1] if i + 1 < len(toks) else None), 2
            m = re.match(r"^(--[a-z-]+)=(.*)$", t)
            if m:
                t, nxt, step = m.group(1), m.group(2), 1
            elif len(t) > 2 and not t.startswith("--"):
                t, nxt, step = t[:2], t[2:], 1
            if t in ("-l", "--listen") and nxt:
                listen = nxt.split(",")[0]
            elif t in ("-p", "--port") and nxt:
                port = nxt
            elif t in ("-s", "--unix-socket") and nxt:
                sock = nxt
            elif t in ("-P", "--pidfile") and nxt:
                pidfile = nxt
            else:
                step = 1
            i += step
    if sock:
        return "unix %s %s" % (sock, pidfile)
    host = listen or "127.0.0.1"
    if host.startswith("["):
        rest = host.split("]", 1)[1]
        host = host.split("]")[0] + "]"
        if rest.startswith(":"):
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    return "tcp %s:%s %s" % (host, port, pidfile)


def version(kind, where):
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        s.connect(where)
    else:
        host, port = where.rsplit(":", 1)
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=1)
    s.sendall(b"version\r\n")
    return s.recv(100).decode().strip()


if sys.argv[1] == "--version":
    print(version(sys.argv[2], sys.argv[3]))
else:
    print(target(sys.argv[1]))
