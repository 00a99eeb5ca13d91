//! The messages between `infra` and its provider program: one JSON request on stdin (`Scope` for
//! `discover`, `ApplyRequest` for `apply`), `ProviderEvent` lines back on stdout.

use crate::facts::CloudFacts;
use crate::lock::LockReply;
use crate::op::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the provider needs to find an environment's resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub environment: String,
    pub region: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub domain: String,
    pub internal_domain: String,
    /// `provider.bucket`: the environment's S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// A static inventory with a bucket: only the bucket is looked at (no EC2, no Route53).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub objects_only: bool,
    /// `provider.lb_subnet_id`: an existing subnet for the load balancers' second zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_subnet_id: Option<String>,
}

/// `infra-aws discover` reads a `Scope`; `infra-aws apply` reads this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub scope: Scope,
    /// In execution order.
    pub ops: Vec<Op>,
    /// The content of every `PutObject`, base64, by its digest (never part of a plan).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, String>,
}

/// `infra-aws host-keys` reads this: the instances whose SSH host keys to read from their
/// console output (where cloud-init prints them), waiting up to `wait_seconds` for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeysRequest {
    pub scope: Scope,
    /// Host name -> instance id.
    pub instances: BTreeMap<String, String>,
    pub wait_seconds: u64,
}

/// One line of the provider's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProviderEvent {
    /// An operation starts.
    Start {
        index: usize,
        address: String,
        text: String,
    },
    /// A long wait goes on (instance starting, volume attaching...).
    Waiting { index: usize, text: String },
    /// An operation finished; `id` of what it created, if anything.
    Done { index: usize, id: Option<String> },
    /// The facts: the answer to `discover`, and the last line of an `apply`.
    Facts { facts: Box<CloudFacts> },
    /// The answer to `lock`.
    Lock { reply: LockReply },
    /// The answer to `host-keys`: per host, the public key lines (`ssh-ed25519 AAAA...`) its
    /// console output carried; a host whose keys did not appear in time is absent.
    HostKeys { keys: BTreeMap<String, Vec<String>> },
    /// Nothing more happens: `index` is the operation that failed, if one did.
    Error {
        index: Option<usize>,
        message: String,
    },
}
