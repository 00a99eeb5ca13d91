"""Parse a supervisord configuration with supervisor's own parser (Debian's python3-supervisor).

Usage: /usr/bin/python3 supervisor_check.py /etc/supervisor/supervisord.conf

What is checked: ServerOptions.realize() reads the file and every [include]d file and builds
the whole process configuration exactly as supervisord does at start (section syntax, value
types, signal names, numprocs/process_name rules, environment=, group membership, ...).

What is relaxed, because it depends on the target machine rather than on the file:
  * user= names (and chown= user:group) that do not exist on THIS machine are accepted if
    they are valid user names: the provisioner creates them on the target host.
  * log file / directory= paths whose directory does not exist here are accepted if absolute.
Each relaxation is reported as a "note:" line.

Added strictness: supervisor silently ignores options it does not know (a typo such as
`autostrat=true` is dropped without a word). We record every option supervisor's parser
actually reads and fail on options present in [program:*], [group:*], [eventlistener:*],
[fcgi-program:*], [supervisord], [unix_http_server] and [inet_http_server] sections that it
never read.
Commands are not executed and their binaries are not required to exist (supervisord only
resolves them when spawning).
"""
import os
import re
import sys

sys.path.insert(0, "/usr/lib/python3/dist-packages")

from supervisor import datatypes, options  # noqa: E402

notes = []
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$", re.I)


def lenient_name_to_uid(orig):
    def f(name):
        try:
            return orig(name)
        except ValueError:
            if USER_RE.match(str(name)):
                notes.append("user %r does not exist on this machine (assumed created on the target)" % name)
                return 65534
            raise
    return f


def lenient_name_to_gid(orig):
    def f(name):
        try:
            return orig(name)
        except ValueError:
            if USER_RE.match(str(name)):
                notes.append("group %r does not exist on this machine (assumed created on the target)" % name)
                return 65534
            raise
    return f


def lenient_dirpath(orig):
    def f(v):
        try:
            return orig(v)
        except ValueError:
            if os.path.isabs(os.path.expanduser(v)):
                notes.append("directory of %s does not exist on this machine (assumed created on the target)" % v)
                return os.path.expanduser(v)
            raise
    return f


def lenient_directory(orig):
    def f(v):
        try:
            return orig(v)
        except ValueError:
            if os.path.isabs(os.path.expanduser(v)):
                notes.append("directory %s does not exist on this machine (assumed created on the target)" % v)
                return os.path.expanduser(v)
            raise
    return f


_uid = lenient_name_to_uid(datatypes.name_to_uid)
_gid = lenient_name_to_gid(datatypes.name_to_gid)
for mod in (datatypes, options):
    if hasattr(mod, "name_to_uid"):
        mod.name_to_uid = _uid
    if hasattr(mod, "name_to_gid"):
        mod.name_to_gid = _gid
# options.py imported these names directly, datatypes.logfile_name uses the module global.
options.existing_dirpath = lenient_dirpath(options.existing_dirpath)
datatypes.existing_dirpath = lenient_dirpath(datatypes.existing_dirpath)
options.existing_directory = lenient_directory(options.existing_directory)
datatypes.existing_directory = lenient_directory(datatypes.existing_directory)

# Record which options supervisor's parser reads.
read_options = set()
_orig_saneget = options.UnhosedConfigParser.saneget


def recording_saneget(self, section, option, *a, **kw):
    read_options.add((section, option))
    return _orig_saneget(self, section, option, *a, **kw)


options.UnhosedConfigParser.saneget = recording_saneget

parsers = []
_orig_read = options.UnhosedConfigParser.read


def keeping_read(self, *a, **kw):
    if self not in parsers:
        parsers.append(self)
    return _orig_read(self, *a, **kw)


options.UnhosedConfigParser.read = keeping_read
_orig_read_file = options.UnhosedConfigParser.read_file


def keeping_read_file(self, *a, **kw):
    if self not in parsers:
        parsers.append(self)
    return _orig_read_file(self, *a, **kw)


options.UnhosedConfigParser.read_file = keeping_read_file

CHECKED_PREFIXES = ("program:", "group:", "eventlistener:", "fcgi-program:")
CHECKED_SECTIONS = ("supervisord", "unix_http_server", "inet_http_server")


def main():
    conf = sys.argv[1]
    opts = options.ServerOptions()
    # realize() exits with status 2 and "Error: ..." on stderr on any configuration error.
    opts.realize(args=["-c", conf])
    failed = False
    for w in opts.parse_warnings:
        if w.startswith("No file matches via include"):
            notes.append(w)
            continue
        print("supervisor warning: %s" % w)
        failed = True
    for parser in parsers:
        for section in parser.sections():
            if not (section.startswith(CHECKED_PREFIXES) or section in CHECKED_SECTIONS):
                continue
            for option in parser.options(section):
                if (section, option) not in read_options:
                    where = parser.section_to_file.get(section, conf)
                    print("unknown option %r in [%s] (%s): supervisor would silently ignore it"
                          % (option, section, where))
                    failed = True
    groups = opts.process_group_configs
    nprocs = sum(len(g.process_configs) for g in groups)
    for n in sorted(set(notes)):
        print("note: %s" % n)
    print("parsed %d group(s), %d process(es)" % (len(groups), nprocs))
    sys.exit(1 if failed else 0)


main()
