//! The protocol between `infra` and its provider programs (`infra-aws`): what a provider finds
//! (`CloudFacts`), what it executes (`Op`, `CloudOp`), and the JSON messages that carry them
//! (`Scope` and `ApplyRequest` in, `ProviderEvent` lines out). Types and their wire format only:
//! no planning, no I/O, nothing but serde, so a provider program links none of infra's core.
//!
//!   infra-aws discover   < Scope          -> one `facts` line
//!   infra-aws apply      < ApplyRequest   -> start/waiting/done lines, then `facts` (or `error`)
//!   infra-aws lock       < LockRequest    -> one `lock` line (or `error`)
//!   infra-aws host-keys  < HostKeysRequest -> waiting lines, then one `host_keys` line

mod facts;
mod hostkeys;
mod lock;
mod message;
mod op;
mod port;

pub use facts::{
    AddressFact, BucketFact, CloudFacts, GroupFact, InstanceFact, ListenerFact, LoadBalancerFact,
    ObjectFact, RecordFact, RuleFact, SourceFact, SubnetFact, TargetGroupFact, VolumeFact, VpcFact,
    ZoneFact,
};
pub use hostkeys::{host_keys_in_console, HOST_KEYS_BEGIN, HOST_KEYS_END};
pub use lock::{lock_key, LockAction, LockHolder, LockReply, LockRequest, DEFAULT_LOCK_TABLE};
pub use message::{ApplyRequest, HostKeysRequest, ProviderEvent, Scope};
pub use op::{
    describe, AliasTarget, CloudOp, HealthCheck, ListenerAction, Op, RecordAction, RecordChange,
    RecordType, RecordValue, Ref, Source,
};
pub use port::{Port, Proto};

/// Tag keys every resource infra creates carries; discovery filters on `infra:env`.
pub const TAG_ENV: &str = "infra:env";
pub const TAG_HOST: &str = "infra:host";
pub const TAG_ROLE: &str = "infra:role";
pub const TAG_ROLES: &str = "infra:roles";
pub const TAG_KEEP: &str = "infra:keep";
/// On the load balancers' subnet infra creates: `lb` (the instances' subnet has no such tag).
pub const TAG_SUBNET: &str = "infra:subnet";
/// Metadata of the objects infra uploads (S3 sends them as `x-amz-meta-*`).
pub const META_ENV: &str = "infra-environment";
pub const META_SHA256: &str = "infra-sha256";
/// TTL of the records infra writes unless a role's `dns:` entry says otherwise.
pub const RECORD_TTL: i64 = 300;
/// The registry records that say which environment owns a public record set:
/// `_infra-owner.<type, lowercase>.<name>` TXT `"infra env=<environment>"` (external-dns' way).
pub const OWNER_PREFIX: &str = "_infra-owner";

/// How a value the cloud assigns during an apply (an id, an address) reads before it exists.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";
