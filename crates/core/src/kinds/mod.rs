//! The kinds of resource on a host, listed once: each kind is one module owning its step, its
//! facts (probe fragment and parser), its plan function and its script fragment. The host
//! planner, the facts assembler and the script assembler iterate this list.
//!
//! Adding a kind: a module with `Step`, `Facts` and an `impl Kind for Step`, and one line in the
//! `kinds!` invocation below. Its place in that list is its place in the plan.

pub mod apt_source;
pub mod command;
pub mod dir;
pub mod file;
pub mod group;
pub mod link;
pub mod package;
pub mod release;
pub mod service;
pub mod user;
pub mod volume;

use crate::desired::{DesiredHost, RoleState};
use crate::secrets::Secrets;
use crate::shell::Script;
use crate::state::{InitSystem, PathFact};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A line of facts output a kind could not read.
#[derive(Debug)]
pub(crate) struct BadLine;

/// What each kind implements; every method has a no-op default.
pub(crate) trait Kind {
    /// Appends this kind's part of the facts script (read-only commands).
    fn probe(_desired: &DesiredHost, _s: &mut Script) {}
    /// Paths this kind wants `stat`ed (owner, group, mode, type) by the facts script's one stat.
    fn paths(_desired: &DesiredHost) -> Vec<&str> {
        Vec::new()
    }
    /// Reads one facts line (split at tabs, its tag first) when it is this kind's.
    fn parse(_fields: &[&str], _facts: &mut Facts) -> Option<Result<(), BadLine>> {
        None
    }
    /// Host-wide steps, before any role's (volumes, packages).
    fn plan_host(_p: &mut Planner) {}
    /// One role's steps, in include order.
    fn plan_role(_role: &RoleState, _p: &mut Planner) {}
    /// Steps left after the last role (services notified by later roles' files).
    fn plan_end(_p: &mut Planner) {}
    /// `kind detail`, e.g. `file /etc/hosts`: a stable address for views and logs.
    fn address(&self) -> String;
    /// Appends the script fragment of this step, numbered `i`.
    fn script(&self, i: usize, w: &mut Writer, s: &mut Script) -> Result<(), ScriptError>;
}

/// The state the kinds' plan functions share for one host.
pub(crate) struct Planner<'a> {
    pub desired: &'a DesiredHost,
    pub facts: &'a Facts,
    /// Present content of changed files (for diffs).
    pub current: &'a BTreeMap<String, Vec<u8>>,
    pub secrets: &'a Secrets,
    pub steps: Vec<Step>,
    /// Packages are installed in this run: their services' state is not known yet.
    pub installing: bool,
    /// Service -> what asks it to reload or restart, in order.
    pub dirty: Vec<(String, Vec<service::Trigger>)>,
    /// Services an unfinished run recorded a restart (not just a reload) for.
    pub pending_restart: BTreeMap<String, bool>,
    /// Commands seen so far (their facts are numbered in apply order).
    pub command_index: usize,
}

impl Planner<'_> {
    /// Records that `trigger` asks `service` to reload or restart.
    pub fn mark(&mut self, service: &str, trigger: service::Trigger) {
        match self.dirty.iter_mut().find(|(s, _)| s == service) {
            Some((_, v)) => v.push(trigger),
            None => self.dirty.push((service.to_string(), vec![trigger])),
        }
    }

    /// Takes what asked `service` to reload or restart so far.
    pub fn take(&mut self, service: &str) -> Vec<service::Trigger> {
        match self.dirty.iter().position(|(s, _)| s == service) {
            Some(i) => self.dirty.remove(i).1,
            None => Vec::new(),
        }
    }
}

/// The state the kinds' script fragments share for one host.
pub(crate) struct Writer<'a> {
    pub host: &'a str,
    pub init: InitSystem,
    /// Every step of the plan, in order.
    pub steps: &'a [Step],
    /// Rendered content by destination, checked against the plan's hashes.
    pub contents: BTreeMap<&'a str, &'a [u8]>,
    /// The digest the plan records for each destination's content (`RenderedFile::digest`).
    pub digests: BTreeMap<&'a str, &'a str>,
    /// Destination -> the service actions its change asks for, journaled before it is written.
    pub journal: BTreeMap<&'a str, Vec<(service::ServiceAction, &'a str)>>,
    /// Which step wrote each file, to put the previous version back when a check fails.
    pub written: BTreeMap<&'a str, usize>,
    /// The host's release, whose build a `release` step runs.
    pub release: Option<&'a crate::desired::DesiredRelease>,
    /// The host's apt sources, whose files an `apt source` step writes.
    pub apt_sources: &'a [crate::desired::DesiredAptSource],
}

/// The plan asks for content the desired state does not have (a stale saved plan).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("host {host}: the plan writes {dest}, which the site no longer renders")]
    MissingFile { host: String, dest: String },
    #[error("host {host}: {dest} renders differently from when the plan was made")]
    ContentChanged { host: String, dest: String },
    #[error("host {host}: the plan builds the release in {path}, which the site no longer deploys there")]
    ReleaseChanged { host: String, path: String },
    #[error("host {host}: apt source {name} is not what it was when the plan was made")]
    AptSourceChanged { host: String, name: String },
}

macro_rules! kinds {
    ($($field:ident: $variant:ident => $module:ident),* $(,)?) => {
        /// One change on one host, in the order the applier runs them.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Step {
            $($variant($module::Step),)*
        }

        impl Step {
            /// A short, stable address for views and logs, e.g. `file /etc/hosts`.
            pub fn address(&self) -> String {
                match self {
                    $(Step::$variant(s) => s.address(),)*
                }
            }

            pub(crate) fn script(&self, i: usize, w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
                match self {
                    $(Step::$variant(st) => st.script(i, w, s),)*
                }
            }
        }

        $(impl From<$module::Step> for Step {
            fn from(s: $module::Step) -> Step {
                Step::$variant(s)
            }
        })*

        /// Everything read from one host: what every kind needs.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Facts {
            pub init: InitSystem,
            /// Owner, group, mode and type of every path a kind asked about.
            pub paths: BTreeMap<String, PathFact>,
            /// sha256 of the raw output: a saved plan is only applied to a host whose facts
            /// still match.
            pub fingerprint: String,
            $(pub $field: $module::Facts,)*
        }

        /// Every kind's part of the facts script, in the list's order.
        pub(crate) fn probe(desired: &DesiredHost, s: &mut Script) {
            $(<$module::Step as Kind>::probe(desired, s);)*
        }

        /// Every path some kind wants stat'ed.
        pub(crate) fn paths(desired: &DesiredHost) -> Vec<&str> {
            let mut all = Vec::new();
            $(all.extend(<$module::Step as Kind>::paths(desired));)*
            all
        }

        /// Hands a facts line to the kind it belongs to.
        pub(crate) fn parse(fields: &[&str], facts: &mut Facts) -> Option<Result<(), BadLine>> {
            $(if let Some(r) = <$module::Step as Kind>::parse(fields, facts) {
                return Some(r);
            })*
            None
        }

        /// Every kind's steps: host-wide ones, then each role's, then what is left.
        pub(crate) fn plan(p: &mut Planner) {
            $(<$module::Step as Kind>::plan_host(p);)*
            for role in &p.desired.roles {
                $(<$module::Step as Kind>::plan_role(role, p);)*
            }
            $(<$module::Step as Kind>::plan_end(p);)*
        }
    };
}

kinds! {
    volume: Volume => volume,
    apt_source: AptSource => apt_source,
    package: Packages => package,
    group: Group => group,
    user: User => user,
    dir: Dir => dir,
    file: File => file,
    link: Link => link,
    service: Service => service,
    command: Command => command,
    release: Release => release,
}
