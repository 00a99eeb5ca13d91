//! The environment lock on the wire: who holds it (`LockHolder`), what `infra-aws lock` is
//! asked to do (`LockRequest`) and what it answers (`LockReply`).

use crate::message::Scope;
use serde::{Deserialize, Serialize};

/// Who holds an environment's lock, as the lock itself records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Random, chosen by the run that took the lock; `infra force-unlock ENV ID` names it.
    pub id: String,
    /// `user@hostname` of the machine that ran infra.
    pub who: String,
    /// `apply` or `destroy`.
    pub operation: String,
    pub environment: String,
    /// When it was taken, in seconds since the Unix epoch (UTC).
    pub since: u64,
    /// The version of infra that took it.
    pub version: String,
}

/// What to do with an aws environment's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LockAction {
    /// Takes the lock for `holder` unless someone holds it.
    Acquire { holder: LockHolder },
    /// Gives the lock up, only if `id` holds it.
    Release { id: String },
    /// Who holds the lock, if anyone.
    Inspect,
}

/// `infra-aws lock` reads this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    pub scope: Scope,
    /// The DynamoDB table the lock lives in (partition key `LockID`, a string).
    pub table: String,
    /// Create the table when it does not exist yet (the default table, not one the inventory
    /// names: a named table that is missing is an error).
    pub create_table: bool,
    #[serde(flatten)]
    pub action: LockAction,
}

/// The answer to a `LockRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LockReply {
    /// Acquire: the lock is ours now.
    Acquired,
    /// Acquire, release or inspect: someone holds it (for release: someone else).
    Held { holder: LockHolder },
    /// Release: it was ours and is free now.
    Released,
    /// Release or inspect: nobody holds it.
    Free,
}

/// The key of an environment's lock item: `infra/<environment>`.
pub fn lock_key(environment: &str) -> String {
    format!("infra/{environment}")
}

/// The table an aws inventory's lock lives in when it names none (created on first use).
pub const DEFAULT_LOCK_TABLE: &str = "infra-locks";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderEvent;

    fn scope() -> Scope {
        Scope {
            environment: "production".into(),
            region: "eu-west-1".into(),
            vpc_id: None,
            subnet_id: None,
            domain: "e.org".into(),
            internal_domain: "p.i".into(),
            bucket: None,
            objects_only: false,
            lb_subnet_id: None,
        }
    }

    fn holder() -> LockHolder {
        LockHolder {
            id: "3f9a0c1d2e4b5a69".into(),
            who: "alice@ws1".into(),
            operation: "apply".into(),
            environment: "production".into(),
            since: 1_764_668_400,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn requests_on_the_wire() {
        let req = LockRequest {
            scope: scope(),
            table: "infra-locks".into(),
            create_table: true,
            action: LockAction::Acquire { holder: holder() },
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["action"], "acquire");
        assert_eq!(v["table"], "infra-locks");
        assert_eq!(v["holder"]["who"], "alice@ws1");
        assert_eq!(v["holder"]["since"], 1_764_668_400u64);
        assert_eq!(v["scope"]["environment"], "production");
        let back: LockRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, req);

        let release: LockRequest = serde_json::from_str(
            r#"{"scope":{"environment":"production","region":"eu-west-1","vpc_id":null,"subnet_id":null,"domain":"e.org","internal_domain":"p.i"},"table":"t","create_table":false,"action":"release","id":"abc"}"#,
        )
        .unwrap();
        assert_eq!(release.action, LockAction::Release { id: "abc".into() });
        let inspect = serde_json::json!({"scope": scope(), "table": "t", "create_table": false, "action": "inspect"});
        let inspect: LockRequest = serde_json::from_value(inspect).unwrap();
        assert_eq!(inspect.action, LockAction::Inspect);
    }

    #[test]
    fn replies_on_the_wire() {
        let line = serde_json::to_string(&ProviderEvent::Lock {
            reply: LockReply::Held { holder: holder() },
        })
        .unwrap();
        assert!(
            line.starts_with(
                r#"{"event":"lock","reply":{"result":"held","holder":{"id":"3f9a0c1d2e4b5a69""#
            ),
            "{line}"
        );
        let back: ProviderEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            ProviderEvent::Lock {
                reply: LockReply::Held { holder: holder() }
            }
        );
        for (reply, text) in [
            (LockReply::Acquired, r#"{"result":"acquired"}"#),
            (LockReply::Released, r#"{"result":"released"}"#),
            (LockReply::Free, r#"{"result":"free"}"#),
        ] {
            assert_eq!(serde_json::to_string(&reply).unwrap(), text);
            assert_eq!(serde_json::from_str::<LockReply>(text).unwrap(), reply);
        }
        assert!(serde_json::from_str::<LockReply>(r#"{"result":"maybe"}"#).is_err());
    }
}
