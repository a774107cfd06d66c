//! Step/flow engine and the flows of every job kind.
//!
//! [`engine`] runs a [`Flow`] of idempotent [`Step`]s with persisted progress, bounded
//! retries, reverse-order reverts and [`failpoint`]s; [`flows`] says which steps make up
//! each job kind; [`steps`] implements them against the store and the drivers;
//! [`JobRunner`] runs one claimed job with progress and settlement in the store.

pub mod config;
pub mod context;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod flows;
pub mod job;
pub mod steps;

pub use context::{AmphoraSpec, FlowSettings, JobContext};
pub use engine::{
    Abort, AbortHandle, Engine, Flow, FlowOutcome, Progress, Resume, RetryPolicy, Step,
};
pub use error::{FlowError, Result};
pub use failpoint::{FailAction, Failpoints};
pub use flows::{flow_for, steps_for};
pub use job::JobRunner;
pub use steps::StepKind;
