//! lastgood's library: everything but argument parsing and rendering.
//!
//! The CLI (and later the dashboard) call [`engine::Engine`] and show what it returns
//! through [`view`], whose `Serialize` is every JSON document; everything below it is
//! plain library code with typed errors.

pub mod action;
pub mod agent;
pub mod atomic;
pub mod config;
pub mod context;
pub mod database;
pub mod digest;
pub mod engine;
pub mod error;
pub mod exec;
pub mod executor;
pub mod failpoint;
pub mod fleet;
pub mod git;
pub mod http1;
pub mod journal;
pub mod ledger;
pub mod lock;
pub mod model;
pub mod monitor;
pub mod notice;
pub mod notify;
pub mod placeholder;
pub mod plan;
pub mod proxy;
pub mod refusal;
pub mod report;
pub mod runtime;
pub mod safety;
pub mod secret;
pub mod snapshots;
pub mod ssh;
pub mod supervise;
pub mod toolcache;
pub mod toolsite;
pub mod verify;
pub mod view;

pub use error::{Error, Result};
