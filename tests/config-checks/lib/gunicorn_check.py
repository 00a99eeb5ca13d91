"""Load gunicorn configuration files with gunicorn's own Config (Debian's python3-gunicorn).

Usage: /usr/bin/python3 gunicorn_check.py FILE...

What is checked: each file is executed as gunicorn executes a `--config` file (Python), and
every setting it defines goes through gunicorn's own Config.set(), which runs the setting's
validator (numbers, booleans, bind addresses, worker classes by name, hooks' arity, ...).

Added strictness: gunicorn silently ignores names it does not know (`worker = 4` for
`workers`), so a lowercase name that is not a gunicorn setting fails, unless it is a module,
a function or starts with `_` (helpers of the file itself).

Relaxed, because it depends on the target machine rather than on the file: `chdir` to a
directory that does not exist here (a release's `current` is made at deploy time), and
`user`/`group` names this machine does not have (the provisioner creates them). Each
relaxation is reported as a "note:" line.
"""
import os
import pwd
import grp
import sys
import types

sys.path.insert(0, "/usr/lib/python3/dist-packages")

from gunicorn.config import Config  # noqa: E402


def relaxed(name, value):
    """A note when `name = value` depends on this machine, else None."""
    if name == "chdir" and isinstance(value, str) and not os.path.isdir(value):
        return f"chdir {value!r} does not exist here: made on the target host"
    if name == "user" and isinstance(value, str) and not value.isdigit():
        try:
            pwd.getpwnam(value)
        except KeyError:
            return f"user {value!r} does not exist here: made on the target host"
    if name == "group" and isinstance(value, str) and not value.isdigit():
        try:
            grp.getgrnam(value)
        except KeyError:
            return f"group {value!r} does not exist here: made on the target host"
    return None


def check(path):
    errors = 0
    cfg = Config()
    namespace = {"__file__": path, "__name__": "__config__"}
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
        exec(code, namespace)  # what gunicorn does with --config FILE
    except Exception as e:  # noqa: BLE001 - any error here is the file's
        print(f"{path}: {type(e).__name__}: {e}")
        return 1
    for name, value in sorted(namespace.items()):
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name not in cfg.settings:
            if callable(value) or not name.islower():
                continue
            print(f"{path}: unknown setting {name!r} (gunicorn would ignore it)")
            errors += 1
            continue
        note = relaxed(name, value)
        if note:
            print(f"note: {path}: {note}")
            continue
        try:
            cfg.set(name, value)
        except Exception as e:  # noqa: BLE001 - the validator's own message
            print(f"{path}: {name} = {value!r}: {e}")
            errors += 1
    return errors


def main():
    if len(sys.argv) < 2:
        print("usage: gunicorn_check.py FILE...", file=sys.stderr)
        return 2
    errors = sum(check(p) for p in sys.argv[1:])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
