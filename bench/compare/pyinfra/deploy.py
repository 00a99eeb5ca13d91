# The comparison workload in pyinfra 3 (see README.md): 2 directories, 2 packages, 25 templated
# files, 2 services, and an nginx reload only when a file marked notify changed.
import json
import os

from pyinfra import host
from pyinfra.operations import apt, files, sysvinit
from pyinfra.operations.util import any_changed

STATE = os.environ["PYI_BENCH_STATE"]
WORKLOAD = os.environ["PYI_BENCH_WORKLOAD"]
TEMPLATES = os.path.join(WORKLOAD, "templates")

with open(os.path.join(STATE, "vars.json"), encoding="utf-8") as f:
    BENCH = json.load(f)
with open(os.path.join(WORKLOAD, "files.json"), encoding="utf-8") as f:
    FILES = json.load(f)

for path in ("/etc/app", "/var/log/app"):
    files.directory(
        name=f"Directory {path}",
        path=path,
        present=True,
        user="root",
        group="root",
        mode="0755",
    )

apt.packages(
    name="Packages nginx, supervisor",
    packages=["nginx", "supervisor"],
    present=True,
    update=False,
)

notify_ops = []
for spec in FILES:
    extra = {"program": spec["program"]} if "program" in spec else {}
    op = files.template(
        name=f"File {spec['dest']}",
        src=os.path.join(TEMPLATES, spec["template"]),
        dest=spec["dest"],
        user="root",
        group="root",
        mode=spec["mode"],
        # Every parent exists (or is made above): no extra Directory fact per file.
        create_remote_dir=False,
        bench=BENCH,
        host_name=host.name,
        **extra,
    )
    if spec.get("notify"):
        notify_ops.append(op)

# The hosts run sysv init, and /usr/bin/systemctl exists on them without systemd running, so
# server.service would pick systemd and fail: use the sysvinit operations directly.
for service in ("nginx", "supervisor"):
    sysvinit.service(
        name=f"Service {service} enabled and running",
        service=service,
        running=True,
        enabled=True,
    )

# The handler: runs (and only then looks at the host) if a notify file changed on this host.
sysvinit.service(
    name="Reload nginx",
    service="nginx",
    running=True,
    reloaded=True,
    _if=any_changed(*notify_ops),
)
