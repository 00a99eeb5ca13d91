//! The site model as written by users: roles and inventories, deserialized from YAML.

use infra_protocol::Port;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub use crate::names::{
    AbsPath, Account, AptName, AptWord, Line, Package, ServiceName, SshKeyword, SshValue,
};

/// A value with the position it was written at.
pub type Sp<T> = serde_saphyr::Spanned<T>;

/// Free-form variables (`defaults`, `vars`, ...).
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// `roles/<name>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: Sp<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub includes: Vec<Sp<String>>,
    #[serde(default)]
    pub requires_on_same_host: Vec<Sp<String>>,
    #[serde(default)]
    pub count: Option<Sp<Count>>,
    #[serde(default)]
    pub public_ip: bool,
    #[serde(default)]
    pub hostname: Option<Sp<String>>,
    #[serde(default)]
    pub volume: Option<Volume>,
    #[serde(default)]
    pub reverse_dns: Option<Sp<bool>>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub exposes: Vec<Expose>,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub dirs: Vec<Dir>,
    #[serde(default)]
    pub files: Vec<Sp<FileEntry>>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub commands: Vec<Sp<Command>>,
    #[serde(default)]
    pub defaults: Vars,
    #[serde(default)]
    pub secrets: Vec<Sp<String>>,
    /// The application this role deploys from git (`release:`), at most one per host.
    #[serde(default)]
    pub release: Option<Sp<Release>>,
    /// This role's hosts are applied after every host holding these roles.
    #[serde(default)]
    pub after: Vec<Sp<String>>,
    /// How many of the role's selected hosts switch to a new release at a time.
    #[serde(default)]
    pub batch: Option<Sp<Batch>>,
    /// Whether a host of the role serves after a switch.
    #[serde(default)]
    pub health: Option<Sp<Health>>,
    /// Third-party apt repositories, set up before any package is installed.
    #[serde(default)]
    pub apt_sources: Vec<Sp<AptSource>>,
    /// A certificate and key from the role's secrets, written to /etc/ssl/infra.
    #[serde(default)]
    pub tls: Option<Sp<Tls>>,
    /// Objects this role's hosts publish to the environment's bucket (`provider.bucket`).
    #[serde(default)]
    pub publish: Vec<Sp<PublishEntry>>,
    /// DNS record sets this role's hosts want (Route53, aws inventories).
    #[serde(default)]
    pub dns: Vec<Sp<DnsEntry>>,
    /// An application load balancer in front of this role's hosts (aws inventories).
    #[serde(default)]
    pub load_balancer: Option<Sp<LoadBalancer>>,
}

/// `load_balancer:` of a role: an internet-facing ALB forwarding to the role's hosts on
/// `port`, with listeners on 80 and/or 443 (HTTPS with `certificate`, an ACM ARN), a health
/// check, and `hostname` (default: the role's `hostname:`) as an alias record to it.
/// `certificate` and `hostname` are Tera, rendered once per role (with its first host).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub port: Sp<u16>,
    /// 80 and/or 443; default `[80]`.
    #[serde(default)]
    pub listeners: Vec<Sp<u16>>,
    #[serde(default)]
    pub certificate: Option<Sp<String>>,
    /// With 443: the 80 listener answers 301 to https (default true).
    #[serde(default)]
    pub redirect_http: Option<bool>,
    #[serde(default)]
    pub health: Option<Sp<LbHealth>>,
    #[serde(default)]
    pub hostname: Option<Sp<String>>,
}

/// The health check of a load balancer's target group; AWS's defaults where left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbHealth {
    #[serde(default)]
    pub path: Option<Sp<String>>,
    #[serde(default)]
    pub matcher: Option<Sp<String>>,
    #[serde(default)]
    pub interval: Option<Sp<u16>>,
    #[serde(default)]
    pub healthy: Option<Sp<u8>>,
    #[serde(default)]
    pub unhealthy: Option<Sp<u8>>,
}

/// `apt_sources:` of a role: a deb822 `.sources` file signed by a key from the site.
/// `uri` and `suite` are Tera, rendered per host like a file's `dest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptSource {
    /// `/etc/apt/sources.list.d/infra-<name>.sources`, `/etc/apt/keyrings/infra-<name>.asc`.
    pub name: Sp<AptName>,
    pub uri: Sp<String>,
    pub suite: Sp<String>,
    pub components: Vec<AptWord>,
    /// A file under templates/ (like a file's `source:`): the OpenPGP public key (armored or
    /// binary) the repository's Release files are signed with.
    pub key: Sp<String>,
    #[serde(default)]
    pub architectures: Vec<AptWord>,
}

/// `tls:` of a role: the names of two of its secrets, a PEM certificate (chain) and its
/// private key, written to `/etc/ssl/infra/<role>.crt` (0644) and
/// `/etc/ssl/infra/private/<role>.key` (0600), notifying `notify` on a change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Sp<String>,
    pub key: Sp<String>,
    #[serde(default)]
    pub notify: Vec<Sp<String>>,
}

/// One entry of a role's `publish:`: a rendered template or a site file, uploaded to the
/// environment's bucket under `key` (Tera, rendered per host like a file's `dest`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishEntry {
    #[serde(default)]
    pub template: Option<Sp<String>>,
    #[serde(default)]
    pub source: Option<Sp<String>>,
    pub key: Sp<String>,
    #[serde(default)]
    pub vars: Vars,
    #[serde(default)]
    pub content_type: Option<Sp<String>>,
}

/// One entry of a role's `dns:`: a record set's name and type, and its values (`value`,
/// `values`, or `dkim`: the public key derived from a secret of the role holding the private
/// key). `name`, `value` and `values` are Tera, rendered per host of the role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEntry {
    #[serde(rename = "type")]
    pub record_type: Sp<infra_protocol::RecordType>,
    pub name: Sp<String>,
    #[serde(default)]
    pub value: Option<Sp<String>>,
    #[serde(default)]
    pub values: Vec<Sp<String>>,
    /// Seconds; default 300.
    #[serde(default)]
    pub ttl: Option<Sp<u32>>,
    /// The name of a secret of the role holding a PEM RSA private key (TXT only).
    #[serde(default)]
    pub dkim: Option<Sp<String>>,
}

/// `release:` of a role: an application deployed from git into `PATH/releases/<commit>`,
/// built beside the live one and switched to by the `PATH/current` link. `path`, `repo`,
/// `controller_repo`, `ref` and `env_file` are Tera, rendered per host like a file's `dest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub path: Sp<String>,
    /// The URL the hosts fetch from.
    pub repo: Sp<String>,
    /// The URL the controller resolves refs from, when it differs from `repo`.
    #[serde(default)]
    pub controller_repo: Option<Sp<String>>,
    /// A branch, tag or commit.
    #[serde(rename = "ref")]
    pub ref_: Sp<String>,
    /// The name of a secret of the role holding the private key the hosts fetch with.
    #[serde(default)]
    pub ssh_key: Option<Sp<String>>,
    /// Owns the release tree; build and once commands run as this user.
    pub user: Sp<Account>,
    /// A requirements file, relative to the checkout: installed into `releases/<c>/venv`.
    #[serde(default)]
    pub requirements: Option<Sp<String>>,
    #[serde(default)]
    pub venv: VenvConfig,
    #[serde(default)]
    pub pip: PipConfig,
    /// A file sourced (`set -a; . FILE`) before the build and once commands.
    #[serde(default)]
    pub env_file: Option<Sp<String>>,
    /// Shell commands run in the release directory as `user`, in order.
    #[serde(default)]
    pub build: Vec<Sp<String>>,
    /// Shell commands run once per environment, on the role's once-host, before any switch.
    #[serde(default)]
    pub once: Vec<Sp<String>>,
    /// Shell commands run as root after `current` is switched.
    #[serde(default)]
    pub reload: Vec<Sp<String>>,
    /// Releases kept per host (the current and the previous one always are).
    #[serde(default)]
    pub keep: Option<Sp<u32>>,
}

impl Release {
    /// Releases kept when `keep` is not written.
    pub const DEFAULT_KEEP: u32 = 5;

    pub fn keep(&self) -> u32 {
        self.keep.as_ref().map_or(Self::DEFAULT_KEEP, |k| k.value)
    }
}

/// `release.venv`: the virtualenv a release's requirements go into.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VenvConfig {
    #[serde(default = "default_python")]
    pub python: AbsPath,
    #[serde(default = "default_true")]
    pub system_site_packages: bool,
}

impl Default for VenvConfig {
    fn default() -> VenvConfig {
        VenvConfig {
            python: default_python(),
            system_site_packages: true,
        }
    }
}

fn default_python() -> AbsPath {
    AbsPath::python3()
}

/// `release.pip`: where pip finds the requirements (pip's own defaults when absent).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PipConfig {
    #[serde(default)]
    pub index_url: Option<Line>,
    /// Directories or URLs of wheels; a relative one is inside the checkout.
    #[serde(default)]
    pub find_links: Vec<Line>,
    #[serde(default)]
    pub no_index: bool,
}

/// How many hosts of an environment may hold a role.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "exactly {a}"),
            (Some(a), Some(b)) => write!(f, "between {a} and {b}"),
            (Some(a), None) => write!(f, "at least {a}"),
            (None, Some(b)) => write!(f, "at most {b}"),
            (None, None) => write!(f, "any number"),
        }
    }
}

/// A block device a role needs, created by the cloud provider and mounted by the host phase.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub size_gb: u32,
    pub mount: String,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_fs")]
    pub fs: String,
    /// Keep the volume when its host is destroyed.
    #[serde(default = "default_true")]
    pub keep_on_destroy: bool,
}

fn default_device() -> String {
    "/dev/xvdf".to_string()
}
fn default_fs() -> String {
    "ext4".to_string()
}
fn default_true() -> bool {
    true
}

/// A file mode, written as a quoted octal string (`"0644"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const HINT: &str = "write the mode as a quoted octal string, e.g. mode: \"0644\"";
        impl de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted octal mode like \"0644\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Mode, E> {
                Err(E::custom(format!("mode {v} is a number: {HINT}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Mode, E> {
                Err(E::custom(format!("mode {v} is a number: {HINT}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Mode, E> {
                Err(E::custom(format!("mode {v} is a number: {HINT}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
                match u32::from_str_radix(v, 8) {
                    Ok(m) if m <= 0o7777 && (3..=4).contains(&v.len()) => Ok(Mode(m)),
                    _ => Err(E::custom(format!("invalid mode `{v}`: {HINT}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A port opened only to the hosts holding some roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expose {
    pub port: Port,
    pub to: Vec<Sp<String>>,
}

/// A local group.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: Account,
    #[serde(default)]
    pub system: bool,
}

/// A local user account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: Account,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub home: Option<AbsPath>,
    #[serde(default)]
    pub shell: Option<AbsPath>,
    #[serde(default)]
    pub groups: Vec<Account>,
}

/// A directory with its owner and mode.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dir {
    pub path: AbsPath,
    #[serde(default = "Account::root")]
    pub owner: Account,
    #[serde(default = "Account::root")]
    pub group: Account,
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A symbolic link `path -> target`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub path: AbsPath,
    pub target: Line,
}

/// A managed file: rendered from a template or copied from a static source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    #[serde(default)]
    pub template: Option<Sp<String>>,
    #[serde(default)]
    pub source: Option<Sp<String>>,
    pub dest: Sp<String>,
    #[serde(default = "Account::root")]
    pub owner: Account,
    #[serde(default = "Account::root")]
    pub group: Account,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub vars: Vars,
    #[serde(default)]
    pub notify: Vec<Sp<String>>,
    #[serde(default)]
    pub check: Option<String>,
    /// What to do when the file's directory (or one above it) is controlled by someone other
    /// than root and the file's owner: refuse (the default), or write it anyway.
    #[serde(default)]
    pub unsafe_parent: UnsafeParent,
    /// The file is read by a shell (`. FILE`, an env file): `validate` checks its secrets
    /// are quoted as in a script.
    #[serde(default)]
    pub sourced: bool,
    /// Only the role's once-host has the file; the role's other hosts have it removed.
    #[serde(default)]
    pub once: bool,
}

/// `unsafe_parent:` of a file: whether root writes a file in a directory that a user other
/// than root and the file's owner owns, or that others may write to. That user could swap
/// the file for a link while it is written, so by default the step is refused; `allow` says
/// the role trusts that user.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnsafeParent {
    #[default]
    Refuse,
    Allow,
}

/// What a change to a service's files means for the running service.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    Reload,
    #[default]
    Restart,
}

/// A service a role runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: ServiceName,
    #[serde(default = "default_true")]
    pub enable: bool,
    #[serde(default)]
    pub on_change: OnChange,
    #[serde(default)]
    pub check: Option<String>,
}

/// An idempotent command, guarded by `unless` or `creates`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub name: Line,
    pub run: String,
    #[serde(default)]
    pub unless: Option<String>,
    #[serde(default)]
    pub creates: Option<String>,
    /// Run on the role's once-host only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
}

/// `inventories/<env>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub environment: Sp<String>,
    pub domain: String,
    pub internal_domain: String,
    pub provider: Sp<Provider>,
    /// How infra reaches the hosts, unless a host says otherwise (default `ssh`).
    #[serde(default)]
    pub connection: Option<Sp<Connection>>,
    #[serde(default)]
    pub ssh: Ssh,
    #[serde(default)]
    pub vars: Vars,
    #[serde(default)]
    pub role_vars: BTreeMap<String, Sp<Vars>>,
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Where the environment lock that `apply` and `destroy` take lives.
    #[serde(default)]
    pub lock: LockConfig,
    pub hosts: BTreeMap<String, Sp<Host>>,
}

impl Inventory {
    /// How infra reaches `host`: its own `connection`, else the inventory's, else SSH.
    pub fn connection_of(&self, host: &str) -> Connection {
        self.hosts
            .get(host)
            .and_then(|h| h.value.connection.as_ref())
            .or(self.connection.as_ref())
            .map_or(Connection::Ssh, |c| c.value)
    }
}

/// How infra reaches a host to gather its facts and apply its plan.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// Over OpenSSH, with the inventory's `ssh` settings.
    #[default]
    Ssh,
    /// The host is the machine infra runs on: its scripts run with `sh` here, as the user
    /// running infra, with no SSH (like Ansible's `ansible_connection=local`).
    Local,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Connection::Ssh => "ssh",
            Connection::Local => "local",
        })
    }
}

/// Which kind of machines an environment runs on.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// EC2 instances created by infra.
    Aws,
    /// Existing machines reached at their `address`.
    Static,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Static => "static",
        })
    }
}

/// The provider and its settings (the AWS ones apply to `type: aws` only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub ami: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub vpc_cidr: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub subnet_cidr: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The environment's S3 bucket (roles' `publish:`); created private by infra if missing.
    #[serde(default)]
    pub bucket: Option<Sp<String>>,
    /// Where `object_url()` points instead of AWS's URL: `<s3_url>/<bucket>/<key>` (tests,
    /// an S3-compatible store).
    #[serde(default)]
    pub s3_url: Option<String>,
    /// The load balancers' second subnet (AWS wants an ALB in two availability zones): an
    /// existing one by id, or one infra creates with this CIDR in `lb_availability_zone`.
    #[serde(default)]
    pub lb_subnet_id: Option<String>,
    #[serde(default)]
    pub lb_subnet_cidr: Option<String>,
    #[serde(default)]
    pub lb_availability_zone: Option<String>,
}

/// How to reach the environment's hosts over SSH.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    #[serde(default)]
    pub user: Option<Account>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub identity_file: Option<SshValue>,
    #[serde(default)]
    pub known_hosts_file: Option<SshValue>,
    #[serde(default)]
    pub jump_host: Option<Sp<String>>,
    /// Which address of a cloud jump host SSH uses: `public` (default) or `private` (through a
    /// VPN or peering, or the local sandbox).
    #[serde(default)]
    pub jump_address: JumpAddress,
    #[serde(default)]
    pub config_file: Option<SshValue>,
    /// Extra ssh_config options for every host, e.g. `{KexAlgorithms: curve25519-sha256}`.
    #[serde(default)]
    pub options: BTreeMap<SshKeyword, SshValue>,
    /// Keep each host's SSH connection open this long after a run (`90s`, `10m`, `1h`, as
    /// OpenSSH's ControlPersist), so the next run within that time logs in no more. Off when
    /// absent: every run opens and closes its own connections.
    #[serde(default)]
    pub control_persist: Option<Sp<String>>,
    /// `pinned` (default), `strict` or `accept-new`: see [`HostKeys`].
    #[serde(default)]
    pub host_keys: HostKeys,
}

impl Ssh {
    /// `control_persist` in seconds, when set and well formed (validation reports the rest).
    pub fn persist_seconds(&self) -> Option<u64> {
        self.control_persist
            .as_ref()
            .and_then(|p| parse_duration(&p.value))
    }
}

/// A duration as OpenSSH writes one: a number of seconds, or numbers each followed by `s`,
/// `m`, `h`, `d` or `w` (`90`, `90s`, `10m`, `1h30m`). `None` if malformed or zero.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|&n| n > 0);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0).then_some(total)
}

/// Where an environment's lock lives (`lock:` in the inventory). `apply` and `destroy` take it
/// before they change anything; `plan` never does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockConfig {
    /// aws: the DynamoDB table holding it (partition key `LockID`, a string). Default
    /// `infra-locks`, created on first use.
    #[serde(default)]
    pub dynamodb_table: Option<Sp<String>>,
    /// static: the host on which an `flock` holds it. Default the jump host, else the first
    /// host by name.
    #[serde(default)]
    pub host: Option<Sp<String>>,
}

/// How SSH host keys are checked (`ssh.host_keys`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    /// A machine infra launched is reached only with the keys its console output showed
    /// (pinned before the first connection); other hosts' keys are accepted on first use.
    #[default]
    Pinned,
    /// Every host needs a key already in the environment's known_hosts (or pinned from a
    /// launched machine's console output).
    Strict,
    /// Every host's key is accepted on first use, a launched machine's too (when its console
    /// shows no keys, e.g. an image without cloud-init).
    AcceptNew,
}

/// Which address of the jump host SSH connects to.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JumpAddress {
    #[default]
    Public,
    Private,
}

/// Where an environment's secrets come from: never from git.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A YAML map of name -> value, outside the repository.
    #[serde(default)]
    pub file: Option<String>,
    /// Environment variables `<prefix><NAME>` set secrets too; default `INFRA_SECRET_`.
    #[serde(default)]
    pub env_prefix: Option<String>,
}

/// One host of an inventory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub roles: Vec<Sp<String>>,
    #[serde(default)]
    pub address: Option<SshValue>,
    /// Overrides the inventory's `connection` for this host.
    #[serde(default)]
    pub connection: Option<Sp<Connection>>,
    #[serde(default)]
    pub private_ip: Option<IpAddr>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub vars: Vars,
}

/// `batch:` of a role: a number of hosts (`batch: 2`) or a share of the role's selected hosts
/// (`batch: "50%"`, rounded up, at least one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Count(u32),
    Percent(u8),
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Batch::Count(n) => write!(f, "{n}"),
            Batch::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Batch::Count(n) => s.serialize_u32(*n),
            Batch::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const HINT: &str =
            "write a number of hosts (`batch: 2`) or a quoted percentage (`batch: \"50%\"`)";
        impl de::Visitor<'_> for V {
            type Value = Batch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of hosts (1 or more) or a percentage like \"50%\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Batch, E> {
                match u32::try_from(v) {
                    Ok(n) if n >= 1 => Ok(Batch::Count(n)),
                    _ => Err(E::custom(format!(
                        "batch {v} is not a number of hosts: {HINT}"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Batch, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "batch {v} is not a number of hosts: {HINT}"
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Batch, E> {
                Err(E::custom(format!(
                    "batch {v} is not a whole number of hosts: {HINT}"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Batch, E> {
                let pct = v
                    .strip_suffix('%')
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p));
                pct.map(Batch::Percent).ok_or_else(|| {
                    E::custom(format!(
                        "batch `{v}` is neither a number of hosts nor a percentage from 1% to 100%: {HINT}"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `health:` of a role: how a host shows it serves after a switch, tried `tries` times,
/// `interval` seconds apart. Exactly one of `http` and `command` (validation).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default)]
    pub http: Option<HealthHttp>,
    /// A shell command run as root on the host: exit 0 means healthy.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default = "default_tries", deserialize_with = "tries")]
    pub tries: u32,
    /// Seconds between tries.
    #[serde(default = "default_interval", deserialize_with = "interval")]
    pub interval: u32,
}

/// `health.http`: `curl` on the host to `http://127.0.0.1:PORT/PATH`, expecting `status`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthHttp {
    #[serde(deserialize_with = "tcp_port")]
    pub port: u16,
    pub path: String,
    #[serde(default = "default_status", deserialize_with = "http_status")]
    pub status: u16,
    /// The `Host` header sent, for a virtual host.
    #[serde(default)]
    pub host: Option<String>,
}

fn default_tries() -> u32 {
    10
}
fn default_interval() -> u32 {
    1
}
fn default_status() -> u16 {
    200
}

/// A whole number in `range`, or an error saying what `field` takes.
fn bounded<'de, D: Deserializer<'de>>(
    d: D,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, D::Error> {
    let v = u64::deserialize(d).map_err(|e| {
        de::Error::custom(format!(
            "{field} must be a whole number from {} to {} ({e})",
            range.start(),
            range.end()
        ))
    })?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(de::Error::custom(format!(
            "{field} {v} is out of range: write a number from {} to {}",
            range.start(),
            range.end()
        )))
    }
}

fn tries<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, "health.tries", 1..=600).map(|v| v as u32)
}
fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, "health.interval (seconds)", 1..=60).map(|v| v as u32)
}
fn tcp_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    bounded(d, "health.http.port", 1..=65535).map(|v| v as u16)
}
fn http_status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    bounded(d, "health.http.status", 100..=599).map(|v| v as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_openssh_writes_them() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("1W"), Some(604_800));
        for bad in [
            "",
            "0",
            "0s",
            "soon",
            "10 m",
            "m",
            "10x",
            "-5",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_inherit_the_inventory_connection_and_may_override_it() {
        let inv: Inventory = serde_saphyr::from_str(
            "environment: e\ndomain: d\ninternal_domain: i\nprovider: {type: static}\n\
             connection: local\nhosts:\n  a: {roles: [r]}\n  \
             b: {roles: [r], address: 10.0.0.2, connection: ssh}\n",
        )
        .unwrap();
        assert_eq!(inv.connection_of("a"), Connection::Local);
        assert_eq!(inv.connection_of("b"), Connection::Ssh);
        let inv: Inventory = serde_saphyr::from_str(
            "environment: e\ndomain: d\ninternal_domain: i\nprovider: {type: static}\n\
             hosts:\n  a: {roles: [r], connection: local}\n  b: {roles: [r]}\n",
        )
        .unwrap();
        assert_eq!(inv.connection_of("a"), Connection::Local);
        assert_eq!(inv.connection_of("b"), Connection::Ssh);
        let bad = "environment: e\ndomain: d\ninternal_domain: i\nprovider: {type: static}\n\
                   connection: sftp\nhosts: {}\n";
        let err = serde_saphyr::from_str::<Inventory>(bad).err().unwrap();
        assert!(err.to_string().contains("local"), "{err}");
    }

    #[test]
    fn modes_must_be_quoted_octal() {
        #[derive(Deserialize)]
        struct M {
            mode: Mode,
        }
        let m: M = serde_saphyr::from_str("mode: \"0640\"").unwrap();
        assert_eq!(m.mode, Mode(0o640));
        let err = serde_saphyr::from_str::<M>("mode: 0644").err().unwrap();
        assert!(err.to_string().contains("quoted octal string"), "{err}");
        assert!(serde_saphyr::from_str::<M>("mode: \"0989\"").is_err());
    }
}
