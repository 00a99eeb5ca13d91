//! `once: true` and `after:` on three real sandbox hosts: a role's once file and once command
//! are on exactly one host (the first by name); when it leaves the inventory the other host
//! takes them; when a host that sorts first arrives, the file moves to it and the old host's
//! copy is removed, with the service it notifies restarted. The role is `after` the queue
//! role: the queue's host is done before either of its hosts begins. Needs root.

mod common;
use common::*;

const SUBNET: &str = "10.213.160";

/// The role: a sysv service whose init script logs what is done to it, a once file that
/// notifies it, a file every host has, and a once command.
const ROLE: &str = "\
name: beat
after: [queue]
services:
  - {name: beatsvc, on_change: restart}
files:
  - {source: beatsvc.init, dest: /etc/init.d/beatsvc, mode: \"0755\"}
  - {template: beat.conf.j2, dest: /etc/beatsvc/beat.conf, once: true, notify: [beatsvc]}
  - {template: beat.conf.j2, dest: /etc/beatsvc/common.conf}
commands:
  - {name: migrate, run: \"hostname > /var/lib/beat-migrated\", creates: /var/lib/beat-migrated, once: true}
  - {name: began, run: \"date +%s%N > /var/lib/beat-began\", creates: /var/lib/beat-began}
";

/// The role the beat hosts are applied after: its one command takes a while (so that hosts
/// applied at the same time would begin before it is done), then notes when it finished.
const QUEUE: &str = "\
name: queue
commands:
  - {name: ready, run: \"sleep 2; date +%s%N > /var/lib/queue-ready\", creates: /var/lib/queue-ready}
";

const INIT: &str = "#!/bin/sh
### BEGIN INIT INFO
# Provides:          beatsvc
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: a service that logs what is done to it
### END INIT INFO
L=/var/log/beatsvc.log
case \"$1\" in
  start) echo start >> $L; touch /run/beatsvc.up ;;
  stop) echo stop >> $L; rm -f /run/beatsvc.up ;;
  restart) echo restart >> $L; touch /run/beatsvc.up ;;
  reload|force-reload) echo reload >> $L ;;
  status) [ -e /run/beatsvc.up ] ;;
  *) exit 1 ;;
esac
";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
}

impl Lab {
    fn setup() -> Lab {
        require_root();
        let site = SiteDir::new();
        site.write("roles/beat.yaml", ROLE)
            .write("roles/queue.yaml", QUEUE)
            .write("templates/beatsvc.init", INIT)
            .write("templates/beat.conf.j2", "host={{ host.name }}\n");
        let sandbox = site.up(SUBNET, &[("one", 11), ("two", 12), ("three", 13)]);
        Lab { sandbox, site }
    }

    /// The inventory: the queue host `q` (three), and `hosts` of role beat as (name, last byte
    /// of the address).
    fn inventory(&self, hosts: &[(&str, u8)]) {
        let mut all = vec![("q", "queue", 13)];
        all.extend(hosts.iter().map(|(name, last)| (*name, "beat", *last)));
        let text = format!(
            "{}  known_hosts_file: {}/known_hosts\n{}",
            self.sandbox.inventory("lab", "lab.test"),
            self.sandbox.state.display(),
            hosts_yaml(SUBNET, &all)
        );
        self.site.write("inventories/lab.yaml", &text);
    }

    fn apply(&self) -> Run {
        let run = infra(self.site.path(), &["apply", "lab", "--yes"]);
        run.assert_code(0);
        run
    }

    /// `sh -c script` on sandbox host `host` (`one` or `two`): its stdout.
    fn sh(&self, host: &str, script: &str) -> String {
        let run = self.sandbox.exec(host, script);
        run.assert_code(0);
        run.stdout
    }

    /// The once file's content on `host`, or `absent`.
    fn once_file(&self, host: &str) -> String {
        self.sh(
            host,
            "cat /etc/beatsvc/beat.conf 2>/dev/null || echo absent",
        )
    }

    /// Who ran the once command on `host`, or `never`.
    fn migrated(&self, host: &str) -> String {
        self.sh(host, "cat /var/lib/beat-migrated 2>/dev/null || echo never")
    }

    fn service_log(&self, host: &str) -> String {
        self.sh(host, "cat /var/log/beatsvc.log 2>/dev/null || true")
    }
}

#[test]
fn a_once_file_and_command_live_on_one_host_and_move_with_it() {
    let lab = Lab::setup();

    // `app1` (one) and `app2` (two): app1 sorts first.
    lab.inventory(&[("app1", 11), ("app2", 12)]);
    let first = lab.apply();
    // The queue host's last (only) step is reported before either beat host's first.
    let at = |needle: &str| {
        first
            .stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", first.stderr))
    };
    let queue_done = at("q: [1/1] command ready: changed");
    assert!(queue_done < at("app1: [1/"), "{}", first.stderr);
    assert!(queue_done < at("app2: [1/"), "{}", first.stderr);
    assert_eq!(lab.once_file("one"), "host=app1\n");
    assert_eq!(lab.once_file("two"), "absent\n");
    assert_eq!(lab.migrated("one"), "one\n");
    assert_eq!(lab.migrated("two"), "never\n");
    for host in ["one", "two"] {
        assert!(lab
            .sh(host, "cat /etc/beatsvc/common.conf")
            .starts_with("host="));
        assert_eq!(lab.service_log(host), "start\n", "{host}");
    }
    // `after: [queue]`: the queue host was done before the beat hosts began.
    let ready: u128 = lab
        .sh("three", "cat /var/lib/queue-ready")
        .trim()
        .parse()
        .unwrap();
    for host in ["one", "two"] {
        let began: u128 = lab
            .sh(host, "cat /var/lib/beat-began")
            .trim()
            .parse()
            .unwrap();
        assert!(ready < began, "{host} began before the queue host was done");
    }
    // Converged: a second plan has nothing to do.
    infra(lab.site.path(), &["plan", "lab", "--detailed-exitcode"]).assert_code(0);

    // app1 leaves the inventory: app2 takes the file and runs the command.
    lab.inventory(&[("app2", 12)]);
    lab.apply();
    assert_eq!(lab.once_file("two"), "host=app2\n");
    assert_eq!(lab.migrated("two"), "two\n");
    assert_eq!(lab.service_log("two"), "start\nrestart\n");

    // The first machine comes back as `a1`, which sorts first: the file moves to it, and
    // app2's copy is removed, its service restarted as for a change.
    lab.inventory(&[("a1", 11), ("app2", 12)]);
    let plan = infra(lab.site.path(), &["plan", "lab"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("- file /etc/beatsvc/beat.conf"),
        "{}",
        plan.stdout
    );
    lab.apply();
    assert_eq!(lab.once_file("one"), "host=a1\n");
    assert_eq!(lab.once_file("two"), "absent\n");
    assert_eq!(lab.service_log("two"), "start\nrestart\nrestart\n");
    // The command is not run again where it already ran (its `creates` is there).
    assert_eq!(lab.migrated("one"), "one\n");
    assert_eq!(
        lab.sh("two", "ls /etc/beatsvc"),
        "common.conf\n",
        "no temp file left beside the removed one"
    );
    infra(lab.site.path(), &["plan", "lab", "--detailed-exitcode"]).assert_code(0);
}
