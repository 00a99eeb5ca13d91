//! The pure core of infra: the site model, loading, validation and rendering. No network, no SSH.

pub mod cloud;
pub mod desired;
pub mod desired_apt;
pub mod desired_release;
pub mod diagnostic;
pub mod environment;
pub mod envlock;
pub mod facts;
pub mod kinds;
pub mod model;
pub mod names;
pub mod par;
pub mod plan;
pub mod quoting;
pub mod release;
pub mod render;
pub mod rollout;
pub mod saved;
pub mod script;
pub mod secrets;
pub(crate) mod shell;
pub mod site;
pub mod state;
pub mod suggest;
pub mod validate;
pub mod vars;
