//! The merge scheduler: one job per ingestion stream per data platform, and one per transformer. Jobs are
//! rows of the data platform's `ds_jobs` table in the merge database (their config is the resource's
//! attributes); every attribute changes in place. `engine` runs one batch of a stream; `runtime` is what
//! `ds scheduler run` does: it claims due jobs with row leases and runs them.

pub mod archive;
pub mod engine;
pub mod kafka;
pub mod live;
pub mod mysql;
pub mod rows;
pub mod runtime;

use crate::kind::{ResourceKind, first_segment};

/// `scheduler_job`, addressed `scheduler_job.<data platform>.<stream or transformer__<workspace>>`.
pub struct Job;

impl ResourceKind for Job {
    fn name(&self) -> &'static str {
        "scheduler_job"
    }
    fn provider(&self) -> &'static str {
        "scheduler"
    }
    /// The data platform's schema, which says which merge database holds its `ds_jobs`.
    fn container(&self, address: &str) -> Option<String> {
        first_segment(address).map(|schema| format!("postgres_schema.{schema}"))
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::JobLive)
    }
}
