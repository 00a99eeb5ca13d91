//! Rolling out across hosts: the waves `after:` orders hosts into, the batches a role's hosts
//! switch in (`batch:`), and the health check run on a host after its switch (`health:`).

use crate::environment::Environment;
use crate::model::{Batch, Health, HealthHttp};
use crate::shell::{n, w, Arg, Script};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Seconds one try of a health `command` may take.
pub const HEALTH_COMMAND_TIMEOUT: u32 = 60;

/// Seconds one try of a health `http` check may take (curl's `--max-time`).
pub const HEALTH_HTTP_TIMEOUT: u32 = 5;

/// One step of an `after:` chain: `host` holds `role`, which is after `after`, which `other`
/// holds, so `host` waits for `other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterLink {
    pub host: String,
    pub role: String,
    pub after: String,
    pub other: String,
}

/// Hosts that `after:` orders after each other in a circle: no order can satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`after:` orders hosts in a cycle: {}", Chain(.links))]
pub struct WaveCycle {
    /// The chain, from the host it starts at back to that host.
    pub links: Vec<AfterLink>,
}

/// `a (role x after y) -> b (role y after x) -> a`.
struct Chain<'a>(&'a [AfterLink]);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.0 {
            write!(f, "{} (role {} after {}) -> ", l.host, l.role, l.after)?;
        }
        match self.0.first() {
            Some(l) => f.write_str(&l.host),
            None => Ok(()),
        }
    }
}

/// Role -> the selected hosts holding it (includes counted), in host order: built once, so a
/// host's links cost its own `after` roles' holders, not a walk over every host.
type Holders<'e> = BTreeMap<&'e str, Vec<&'e str>>;

fn holders<'e>(env: &'e Environment, selected: &BTreeSet<&str>) -> Holders<'e> {
    let mut out: Holders<'e> = BTreeMap::new();
    for (name, h) in env
        .hosts
        .iter()
        .filter(|(n, _)| selected.contains(n.as_str()))
    {
        for role in &h.view.all_roles {
            out.entry(role.as_str()).or_default().push(name.as_str());
        }
    }
    out
}

/// An [`AfterLink`] borrowed from the environment (a walk over 1,000 hosts visits tens of
/// thousands of them; only a cycle's are copied out).
#[derive(Clone, Copy)]
struct Link<'e> {
    host: &'e str,
    role: &'e str,
    after: &'e str,
    other: &'e str,
}

impl Link<'_> {
    fn owned(&self) -> AfterLink {
        AfterLink {
            host: self.host.to_string(),
            role: self.role.to_string(),
            after: self.after.to_string(),
            other: self.other.to_string(),
        }
    }
}

/// What a host waits for: every other selected host holding a role that one of its roles
/// (includes counted) is `after`. A role after a role of the same host waits for nothing: the
/// host applies its roles in order.
fn links<'e>(env: &'e Environment, holders: &Holders<'e>, host: &str) -> Vec<Link<'e>> {
    let Some((host, h)) = env.hosts.get_key_value(host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for role in &h.view.all_roles {
        let Some(r) = env.site.roles.get(role) else {
            continue;
        };
        for after in &r.value.after {
            let others = holders
                .get(after.value.as_str())
                .map_or(&[][..], Vec::as_slice);
            for other in others.iter().filter(|o| **o != host) {
                out.push(Link {
                    host,
                    role,
                    after: &after.value,
                    other,
                });
            }
        }
    }
    out
}

/// For each host of `hosts`, the selected hosts it waits for (see `links`), each once, sorted:
/// when one of them fails (or is not applied), the host is not applied either.
pub fn waits_for_each(env: &Environment, hosts: &[String]) -> BTreeMap<String, Vec<String>> {
    let selected: BTreeSet<&str> = hosts.iter().map(String::as_str).collect();
    let holders = holders(env, &selected);
    hosts
        .iter()
        .map(|h| (h.clone(), waits_of(env, &holders, h)))
        .collect()
}

fn waits_of(env: &Environment, holders: &Holders, host: &str) -> Vec<String> {
    let others: BTreeSet<&str> = links(env, holders, host)
        .into_iter()
        .map(|l| l.other)
        .collect();
    others.into_iter().map(str::to_string).collect()
}

/// The waves `hosts` are applied in: a host's wave is one more than the highest wave of the
/// hosts it waits for (see `links`), 0 when it waits for none. Hosts of a wave are sorted by
/// name; empty waves are left out; every host is in exactly one wave.
pub fn waves(env: &Environment, hosts: &[String]) -> Result<Vec<Vec<String>>, WaveCycle> {
    #[derive(Clone, Copy)]
    enum Mark {
        Active,
        Done(usize),
    }
    struct Walk<'a> {
        env: &'a Environment<'a>,
        holders: Holders<'a>,
        marks: BTreeMap<&'a str, Mark>,
        /// `path[i]` is the link from the i-th host of the walk to the next.
        path: Vec<Link<'a>>,
    }
    impl<'a> Walk<'a> {
        fn wave(&mut self, host: &'a str) -> Result<usize, WaveCycle> {
            if let Some(Mark::Done(k)) = self.marks.get(host) {
                return Ok(*k);
            }
            self.marks.insert(host, Mark::Active);
            let mut k = 0;
            for link in links(self.env, &self.holders, host) {
                if let Some(Mark::Active) = self.marks.get(link.other) {
                    let start = (self.path.iter())
                        .position(|l| l.host == link.other)
                        .unwrap_or(self.path.len());
                    let links = self.path[start..].iter().chain([&link]);
                    return Err(WaveCycle {
                        links: links.map(Link::owned).collect(),
                    });
                }
                self.path.push(link);
                let before = self.wave(link.other)?;
                self.path.pop();
                k = k.max(before + 1);
            }
            self.marks.insert(host, Mark::Done(k));
            Ok(k)
        }
    }
    let selected = hosts.iter().map(String::as_str).collect();
    let mut walk = Walk {
        env,
        holders: holders(env, &selected),
        marks: BTreeMap::new(),
        path: Vec::new(),
    };
    let mut by_wave: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for h in hosts {
        let k = walk.wave(h)?;
        by_wave.entry(k).or_default().insert(h.clone());
    }
    Ok(by_wave
        .into_values()
        .map(|set| set.into_iter().collect())
        .collect())
}

/// `hosts` (a role's selected hosts, in order) cut into the batches they switch in: `batch`
/// hosts at a time, or that share of them rounded up (at least one); all at once without one.
pub fn batches(hosts: &[String], batch: Option<Batch>) -> Vec<Vec<String>> {
    let size = match batch {
        None => hosts.len(),
        Some(Batch::Count(k)) => usize::try_from(k).unwrap_or(usize::MAX),
        Some(Batch::Percent(p)) => (hosts.len() * usize::from(p)).div_ceil(100),
    };
    hosts.chunks(size.max(1)).map(<[String]>::to_vec).collect()
}

/// The health check of one host, as a POSIX sh script run there as root: the check tried up
/// to `tries` times, `interval` seconds apart, until it passes. Its last line is `health ok`
/// (exit 0) or `health failed: ...` (exit 1): the status curl got, or the command's exit status
/// after its last output lines.
pub fn health_script(health: &Health) -> String {
    let mut s = Script::new();
    s.raw("set -u\nexport LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\ncd / || exit 1\n");
    s.raw("e=$(mktemp) || { echo 'health failed: cannot create a temporary file'; exit 1; }\ntrap 'rm -f \"$e\"' EXIT\n");
    if let Some(http) = &health.http {
        s.raw("command -v curl >/dev/null || { echo 'health failed: curl is not installed on this host'; exit 1; }\n");
        http_check(http, &mut s);
    } else if let Some(cmd) = &health.command {
        command_check(cmd, &mut s);
    } else {
        s.raw("check() { why='no http or command to check'; false; }\n");
    }
    s.line("i=1; tries={}", &[n(health.tries as usize)])
        .raw("while ! check; do\n")
        .raw("  [ \"$i\" -ge \"$tries\" ] && { [ -z \"${out:-}\" ] || printf '%s\\n' \"$out\" | tail -n 5; printf 'health failed: %s\\n' \"$why\"; exit 1; }\n")
        .line("  i=$((i + 1)); sleep {}", &[n(health.interval as usize)])
        .raw("done\necho 'health ok'\n");
    s.into_string()
}

/// `check` for `health.http`: curl's status code against the expected one (`-g`: `[]{}` in
/// the path are sent as written, not expanded as curl's URL globs).
fn http_check(http: &HealthHttp, s: &mut Script) {
    let url = format!("http://127.0.0.1:{}{}", http.port, http.path);
    let header = http.host.as_ref().map(|h| format!("Host: {h}"));
    let mut curl = Script::new();
    curl.push(
        "curl -g -sS -o /dev/null -w '%{http_code}' --max-time {}",
        &[n(HEALTH_HTTP_TIMEOUT as usize)],
    );
    if let Some(h) = &header {
        curl.push(" -H {}", &[w(h)]);
    }
    curl.push(" {}", &[w(&url)]);
    s.line(
        "check() {\n  code=$({} 2>\"$e\" </dev/null)\n  [ \"$code\" = {} ] && return 0\n  why=\"got ${code:-000}\"; err=$(tail -n 1 \"$e\")\n  [ -z \"$err\" ] || why=\"$why ($err)\"\n  return 1\n}",
        &[Arg::Frag(&curl), n(usize::from(http.status))],
    );
}

/// `check` for `health.command`: `sh -c COMMAND` as root, exit 0 = healthy.
fn command_check(cmd: &str, s: &mut Script) {
    s.line(
        "check() {\n  out=$(timeout {} sh -c {} 2>&1 </dev/null); rc=$?\n  [ \"$rc\" = 0 ] && return 0\n  why=\"exit status $rc\"; [ \"$rc\" = 124 ] && why=\"no answer within {} seconds\"\n  return 1\n}",
        &[
            n(HEALTH_COMMAND_TIMEOUT as usize),
            w(cmd),
            n(HEALTH_COMMAND_TIMEOUT as usize),
        ],
    );
}

/// What a health script's output says: `Ok` for `health ok`, the reason for `health failed:
/// ...`, `None` when its last line is neither (it did not finish).
pub fn health_verdict(stdout: &str) -> Option<Result<(), String>> {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty())?;
    if last == "health ok" {
        Some(Ok(()))
    } else {
        last.strip_prefix("health failed: ")
            .map(|why| Err(why.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batches_cut_hosts_in_order() {
        let hosts = names(&["a", "b", "c", "d", "e"]);
        assert_eq!(batches(&hosts, None), vec![hosts.clone()]);
        assert_eq!(
            batches(&hosts, Some(Batch::Count(2))),
            vec![names(&["a", "b"]), names(&["c", "d"]), names(&["e"])]
        );
        assert_eq!(
            batches(&hosts, Some(Batch::Percent(50))),
            vec![names(&["a", "b", "c"]), names(&["d", "e"])]
        );
        // 1% of 5 hosts rounds up to one host.
        assert_eq!(batches(&hosts, Some(Batch::Percent(1))).len(), 5);
        assert_eq!(batches(&hosts, Some(Batch::Percent(100))).len(), 1);
        assert_eq!(batches(&hosts, Some(Batch::Count(9))), vec![hosts.clone()]);
        assert!(batches(&[], Some(Batch::Count(1))).is_empty());
        assert!(batches(&[], None).is_empty());
    }

    /// Every host exactly once, in the order given, and no batch larger than asked.
    #[test]
    fn batches_keep_every_host_once_for_every_size() {
        for len in 0..40 {
            let hosts: Vec<String> = (0..len).map(|i| format!("h{i:02}")).collect();
            let mut asks: Vec<Option<Batch>> = vec![None];
            asks.extend((1..=45).map(|k| Some(Batch::Count(k))));
            asks.extend((1..=100).map(|p| Some(Batch::Percent(p))));
            for batch in asks {
                let out = batches(&hosts, batch);
                assert_eq!(out.concat(), hosts, "{len} hosts, {batch:?}");
                assert!(out.iter().all(|b| !b.is_empty()), "{batch:?}");
                let max = match batch {
                    None => len.max(1),
                    Some(Batch::Count(k)) => k as usize,
                    Some(Batch::Percent(p)) => (len * p as usize).div_ceil(100).max(1),
                };
                assert!(out.iter().all(|b| b.len() <= max), "{len} {batch:?}");
                if len > 0 {
                    assert_eq!(out.len(), len.div_ceil(max), "{len} {batch:?}");
                }
            }
        }
    }

    #[test]
    fn verdicts_read_the_last_line() {
        assert_eq!(health_verdict("x\nhealth ok\n"), Some(Ok(())));
        assert_eq!(
            health_verdict("boom\nhealth failed: got 503\n\n"),
            Some(Err("got 503".into()))
        );
        assert_eq!(health_verdict("half"), None);
        assert_eq!(health_verdict(""), None);
    }

    #[test]
    fn health_values_enter_the_script_quoted() {
        let h = Health {
            http: Some(HealthHttp {
                port: 8080,
                path: "/h?a=$(touch /tmp/x)".into(),
                status: 204,
                host: Some("a'b.example".into()),
            }),
            command: None,
            tries: 3,
            interval: 2,
        };
        let s = health_script(&h);
        assert!(
            s.contains("'http://127.0.0.1:8080/h?a=$(touch /tmp/x)'"),
            "{s}"
        );
        assert!(s.contains("-H 'Host: a'\\''b.example'"), "{s}");
        assert!(s.contains("[ \"$code\" = 204 ]"), "{s}");
        assert!(s.contains("tries=3") && s.contains("sleep 2"), "{s}");
        let c = health_script(&Health {
            http: None,
            command: Some("test -e '/run/x'".into()),
            tries: 1,
            interval: 1,
        });
        assert!(c.contains("sh -c 'test -e '\\''/run/x'\\'''"), "{c}");
    }
}
