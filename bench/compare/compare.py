"""infra against Ansible and pyinfra on the same sandbox hosts, in the same run (bench/compare.sh).

One workload (bench/compare/workload: the app role's 25 files, 2 packages, 2 services, one
nginx reload on change) expressed three ways (bench/compare/{infra,ansible,pyinfra}/run.sh).
For each number of hosts N and added round-trip time, it brings up N sandbox hosts and times:

  first    apply on fresh hosts (the hosts are rebuilt before every run)
  noop     apply with nothing to change
  check    infra plan / ansible-playbook --check / pyinfra --dry, nothing to change
  change   apply with one file changed on every host (and nginx reloaded)
  floor    every host at once: one ssh login running one command that hashes and stats the 25
           files; "floor-open" the same over connections opened beforehand (ControlMaster)

Tools alternate within each round (the order rotates), several rounds each. Wall time is
measured around the tool's process; peak memory is the controller side's: the peak usage of a
memory cgroup (v1) holding the tool and every process it starts (ssh included), or, without
that cgroup, the largest summed RSS of the process tree sampled every 50 ms. Results are written as they come to OUT (markdown) and WORK/results.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (bench/compare/report.py)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SANDBOX = os.path.join(REPO, "tests/sandbox/sandbox.sh")
PREFIX = "10.213.130"
# The rounds of the slow peers in the default matrix (--runs-for): the whole matrix then takes
# about 2 h on 2 cores (2026-12-01) instead of over 4 h.
SLOW_RUNS = ["ansible@10=2", "ansible@50=1", "pyinfra@50=2"]
MODES = {
    "infra": {"noop": "apply", "first": "apply", "change": "apply", "check": "plan"},
    # infra with ssh.control_persist: each run takes up the connections the previous one kept
    # (bench/compare/infra/run.sh, INFRA_BENCH_KEEP); not in the default tools.
    "infra-kept": {"noop": "apply", "first": "apply", "change": "apply", "check": "plan"},
    # Another build of infra (INFRA_BASE_BIN, e.g. the commit before a change to the engine),
    # for a before/after in the same run; not in the default tools.
    "infra-base": {"noop": "apply", "first": "apply", "change": "apply", "check": "plan"},
    "ansible": {"noop": "apply", "first": "apply", "change": "apply", "check": "check"},
    "pyinfra": {"noop": "apply", "first": "apply", "change": "apply", "check": "dry"},
}


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, **kw)


class Hosts:
    """N sandbox hosts (h1..hN at PREFIX.2...), optionally behind a delay relay."""

    def __init__(self, work, n, rtt):
        self.work, self.n, self.rtt = work, n, rtt
        self.state = os.path.join(work, "sandbox")
        self.names = [f"h{i}" for i in range(1, n + 1)]
        self.ips = {h: f"{PREFIX}.{i + 1}" for i, h in enumerate(self.names, start=1)}
        self.relay = None

    def up(self):
        self.down()
        env = dict(os.environ, INFRA_SANDBOX_SUBNET=f"{PREFIX}.0/24")
        t = time.monotonic()
        sh(SANDBOX, "up", self.state, *[f"{h}={ip}" for h, ip in self.ips.items()],
           env=env, stdout=subprocess.DEVNULL)
        return time.monotonic() - t

    def down(self):
        if os.path.isdir(self.state):
            sh(SANDBOX, "down", self.state, check=False, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)

    def start_relay(self):
        if self.rtt == 0:
            return
        maps = [f"{self.addr(h)[0]}:2222={ip}:22" for h, ip in self.ips.items()]
        self.relay = subprocess.Popen([sys.executable, os.path.join(HERE, "delay_relay.py"),
                                       str(self.rtt), *maps], stdout=subprocess.PIPE, text=True,
                                      preexec_fn=die_with_parent)
        if self.relay.stdout.readline().strip() != "ready":
            raise RuntimeError("the delay relay did not start (its error is above; a relay left "
                               "over from an interrupted run holds the ports? pkill -f delay_relay.py)")

    def stop_relay(self):
        if self.relay:
            self.relay.kill()
            self.relay.wait()
            self.relay = None

    def addr(self, host):
        """Where SSH reaches a host: directly, or through its relay listener."""
        if self.rtt == 0:
            return self.ips[host], 22
        i = self.names.index(host) + 2
        return f"127.0.1.{i}", 2222

    def key(self):
        return os.path.join(self.state, "id_ed25519")


def die_with_parent():
    """In a child, before exec: SIGTERM when the benchmark dies (Linux PR_SET_PDEATHSIG), so no
    relay outlives an interrupted run and holds its ports."""
    import ctypes
    import signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Peak:
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def tree(self):
        children = {}
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def run(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.stop:
            total = 0
            for p in self.tree():
                try:
                    with open(f"/proc/{p}/statm") as f:
                        total += int(f.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def done(self):
        self.stop = True
        self.thread.join()
        return self.peak


CGROOT = "/sys/fs/cgroup/memory"


def cgroup(name):
    """A memory cgroup (v1) for one tool: its peak usage is read without sampling."""
    path = os.path.join(CGROOT, f"infra-bench-{name}")
    if not os.path.isfile(os.path.join(CGROOT, "memory.max_usage_in_bytes")):
        return None
    os.makedirs(path, exist_ok=True)
    return path


def timed(cmd, env=None, ok=(0,), group="other"):
    cg = cgroup(group)
    if cg:
        with open(os.path.join(cg, "memory.max_usage_in_bytes"), "w") as f:
            f.write("0")
        cmd = ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", *cmd]
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = None if cg else Peak(p.pid)
    out, err = p.communicate()
    wall = time.monotonic() - t
    if cg:
        with open(os.path.join(cg, "memory.max_usage_in_bytes")) as f:
            mem = int(f.read())
    else:
        mem = peak.done()
    if p.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}\n{out[-3000:]}\n{err[-3000:]}")
    return wall, mem, out, err


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.results = []  # dicts: n, rtt, case, tool, wall, mem, extra
        self.tag = "a"
        with open(os.path.join(HERE, "workload/files.json")) as f:
            self.files = [e["dest"] for e in json.load(f)]

    def state(self, tool):
        return os.path.join(self.work, f"state-{tool}")

    def write_state(self, hosts, tool, tag):
        d = self.state(tool)
        os.makedirs(d, exist_ok=True)
        hj = [{"name": h, "ip": hosts.addr(h)[0], "port": hosts.addr(h)[1]} for h in hosts.names]
        with open(os.path.join(d, "hosts.json"), "w") as f:
            json.dump(hj, f)
        shutil.copy(hosts.key(), os.path.join(d, "key"))
        os.chmod(os.path.join(d, "key"), 0o600)
        with open(os.path.join(HERE, "workload/vars.json")) as f:
            bench = json.load(f)
        bench["tag"] = tag
        bench["peers"] = [{"name": h, "ip": ip} for h, ip in hosts.ips.items()]
        path = os.path.join(d, "vars.json")
        old = open(path).read() if os.path.exists(path) else None
        new = json.dumps(bench, indent=1, sort_keys=True)
        if new != old:
            with open(path, "w") as f:
                f.write(new)

    def forget_keys(self, tool):
        d = self.state(tool)
        for root, _, files in os.walk(d):
            for f in files:
                if "known_hosts" in f:
                    os.remove(os.path.join(root, f))

    def run_tool(self, tool, case):
        infra = tool.startswith("infra")
        script = os.path.join(HERE, "infra" if infra else tool, "run.sh")
        cmd = [script, MODES[tool][case], self.state(tool)]
        ok = (0, 2) if infra and case == "check" else (0,)
        env = None
        if tool == "infra-kept":
            env = dict(os.environ, INFRA_BENCH_KEEP="10m",
                       INFRA_SSH_CONTROL_DIR=os.path.join(self.work, "cm-kept"))
        if tool == "infra-base":
            base = os.environ.get("INFRA_BASE_BIN")
            if not base or not os.access(base, os.X_OK):
                raise RuntimeError("infra-base needs INFRA_BASE_BIN: an infra binary to compare with")
            env = dict(os.environ, INFRA_BIN=base)
        wall, mem, out, err = timed(cmd, env=env, ok=ok, group=tool)
        extra = {}
        if infra:
            for line in err.splitlines():
                if "hosts planned with" in line:
                    w = line.split()
                    extra["remote_commands"] = int(w[w.index("with") + 1])
                    if "new SSH logins" in line:
                        extra["logins"] = int(w[w.index("new") - 1])
            if case in ("noop", "check") and "No changes." not in out:
                raise RuntimeError(f"infra {case} found changes:\n{out[-2000:]}")
        return wall, mem, extra

    def record(self, hosts, case, tool, wall, mem, extra=None):
        r = dict(n=hosts.n, rtt=hosts.rtt, case=case, tool=tool, wall=wall, mem=mem,
                 extra=extra or {})
        self.results.append(r)
        log(f"N={hosts.n} rtt={hosts.rtt} {case:7} {tool:12} {wall:8.2f} s {mem / 2**20:7.1f} MB")
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        self.write_report()

    def floor(self, hosts, open_connections):
        files = " ".join(self.files)
        script = f"sha256sum {files} >/dev/null; stat -c '%a %U %G' {files} >/dev/null"
        cp = os.path.join(self.work, "cm-%h-%p")
        base = ["ssh", "-i", hosts.key(), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes"]
        masters = []
        if open_connections:
            for h in hosts.names:
                ip, port = hosts.addr(h)
                masters.append(subprocess.Popen(
                    base + ["-M", "-N", "-o", f"ControlPath={cp}", "-p", str(port), f"root@{ip}"]))
            deadline = time.monotonic() + 60
            for h in hosts.names:
                ip, port = hosts.addr(h)
                while sh("ssh", "-o", f"ControlPath={cp}", "-O", "check", "-p", str(port),
                         f"root@{ip}", check=False, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).returncode != 0:
                    assert time.monotonic() < deadline, "ControlMaster did not come up"
                    time.sleep(0.05)
        extra_opts = ["-o", f"ControlPath={cp}", "-o", "ControlMaster=no"] if open_connections \
            else ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        cmds = []
        for h in hosts.names:
            ip, port = hosts.addr(h)
            cmds.append(base + extra_opts + ["-p", str(port), f"root@{ip}", script])
        # All hosts at once, from one small driver process (like xargs -P N). The commands go
        # in a file: at 200 hosts they pass the kernel's limit on one argument (128 KiB).
        cmd_file = os.path.join(self.work, "floor-commands.json")
        with open(cmd_file, "w") as f:
            json.dump(cmds, f)
        driver = [sys.executable, "-c",
                  "import json,subprocess,sys\n"
                  "ps=[subprocess.Popen(c) for c in json.load(open(sys.argv[1]))]\n"
                  "sys.exit(max(p.wait() for p in ps))", cmd_file]
        try:
            wall, mem, _, _ = timed(driver, group="floor")
        finally:
            for m in masters:
                m.terminate()
                m.wait()
            os.unlink(cmd_file)
        return wall, mem

    def runs(self, tool, n):
        """Rounds for a tool at N hosts: --runs, or what a --runs-for TOOL@N=K says."""
        return self.args.runs_for.get((tool, n), self.args.runs)

    def order(self, tools, r, n):
        """Round r's order: rotated by one each round; tools out of rounds drop out."""
        rotated = tools[r % len(tools):] + tools[:r % len(tools)]
        return [t for t in rotated if r < self.runs(t, n)]

    def one(self, n, rtt):
        hosts = Hosts(self.work, n, rtt)
        tools = self.args.tools
        cases = self.args.cases
        runs = max([self.runs(t, n) for t in tools] + [self.args.runs])
        try:
            up = hosts.up()
            log(f"N={n}: sandbox up in {up:.1f} s")
            hosts.start_relay()
            for t in tools:
                self.write_state(hosts, t, self.tag)
            if "first" in cases:
                for r in range(runs):
                    for t in self.order(tools, r, n):
                        hosts.stop_relay()
                        hosts.up()
                        hosts.start_relay()
                        self.forget_keys(t)
                        wall, mem, extra = self.run_tool(t, "first")
                        self.record(hosts, "first", t, wall, mem, extra)
            else:
                wall, mem, extra = self.run_tool(tools[0], "first")
            # The hosts were rebuilt with new host keys: every tool meets them afresh.
            for t in tools:
                self.forget_keys(t)
            for case in ("noop", "check", "change", "floor"):
                if case not in cases:
                    continue
                for r in range(runs):
                    order = self.order(tools, r, n)
                    if case == "floor":
                        order = ["floor", "floor-open"]
                    for t in order:
                        if t.startswith("floor"):
                            wall, mem = self.floor(hosts, t == "floor-open")
                            self.record(hosts, "floor", t, wall, mem)
                            continue
                        if case == "change":
                            self.tag = "b" if self.tag == "a" else "a"
                        self.write_state(hosts, t, self.tag)
                        wall, mem, extra = self.run_tool(t, case)
                        self.record(hosts, case, t, wall, mem, extra)
                if case == "change":
                    # Every tool's state back in line with the hosts.
                    for t in tools:
                        self.write_state(hosts, t, self.tag)
        finally:
            hosts.stop_relay()
            hosts.down()

    def write_report(self):
        with open(self.args.out, "w") as f:
            f.write(report.report(self.results))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", default="10,50")
    p.add_argument("--rtt", default="0,25", help="added round-trip times in ms")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--runs-for", action="append", default=None, metavar="TOOL@N=K",
                   help="K rounds instead of --runs for TOOL at N hosts (repeatable; 'none' for "
                        "--runs everywhere). Default: " + " ".join(SLOW_RUNS) + " (one Ansible "
                        "run of 50 hosts takes about 6 minutes on 2 cores, one pyinfra run 1-2)")
    p.add_argument("--tools", default="infra,ansible,pyinfra")
    p.add_argument("--cases", default="first,noop,check,change,floor")
    p.add_argument("--work", default="/tmp/infra-bench-compare")
    p.add_argument("--resume", action="store_true",
                   help="go on with the run whose results are in WORK/results.json")
    p.add_argument("--out", default=os.path.join(REPO, "bench/results-compare.md"))
    args = p.parse_args()
    args.tools = args.tools.split(",")
    args.cases = args.cases.split(",")
    runs_for = {}
    for spec in SLOW_RUNS if args.runs_for is None else args.runs_for:
        if spec == "none":
            continue
        try:
            who, k = spec.split("=")
            tool, n = who.split("@")
            runs_for[(tool, int(n))] = int(k)
        except ValueError:
            p.error(f"--runs-for {spec}: expected TOOL@N=K, e.g. ansible@50=1")
    args.runs_for = runs_for
    os.makedirs(args.work, exist_ok=True)
    b = Bench(args)
    done = set()
    if args.resume:
        # An interrupted run goes on: what WORK/results.json has of it stays, and every
        # (N, RTT) part it holds whole (its floor is measured last) is not run again.
        with open(os.path.join(args.work, "results.json")) as f:
            b.results = json.load(f)
        done = {(r["n"], r["rtt"]) for r in b.results if r["case"] == "floor"}
        b.results = [r for r in b.results if (r["n"], r["rtt"]) in done]
        log(f"resuming: {sorted(done)} already measured")
    for n in [int(x) for x in args.hosts.split(",")]:
        for rtt in [int(x) for x in args.rtt.split(",")]:
            if (n, rtt) not in done:
                b.one(n, rtt)
    log(f"results in {args.out}")


if __name__ == "__main__":
    main()
