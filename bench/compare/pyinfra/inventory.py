# pyinfra inventory for the comparison benchmark, built from $PYI_BENCH_STATE/hosts.json
# (set by run.sh). One group, `bench`, holding every host; the SSH settings are host data.
import json
import os

_state = os.environ["PYI_BENCH_STATE"]

with open(os.path.join(_state, "hosts.json"), encoding="utf-8") as _f:
    _hosts = json.load(_f)

bench = [
    (
        h["name"],
        {
            "ssh_hostname": h["ip"],
            "ssh_port": int(h.get("port", 22)),
            "ssh_user": "root",
            "ssh_key": os.path.join(_state, "key"),
            # Only that key: no agent, no ~/.ssh/id_* probing, no ~/.ssh/config.
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "ssh_config_file": "/dev/null",
            # Like OpenSSH's StrictHostKeyChecking=accept-new with a known_hosts file under
            # STATE: the first run records each host's key (a warning per host), later runs
            # check it; never a prompt, ~/.ssh untouched.
            "ssh_strict_host_key_checking": "accept-new",
            "ssh_known_hosts_file": os.path.join(_state, "pyinfra-known_hosts"),
        },
    )
    for h in _hosts
]
