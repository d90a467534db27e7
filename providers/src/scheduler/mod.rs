//! The merge scheduler: one job per ingestion stream per data platform, and one per transformer. Jobs are
//! rows in the merge database's scheduler tables; every attribute changes in place.

pub mod engine;

use crate::kind::ResourceKind;

/// `scheduler_job`, addressed `scheduler_job.<data platform>.<stream or transformer__<workspace>>`.
pub struct Job;

impl ResourceKind for Job {
    fn name(&self) -> &'static str {
        "scheduler_job"
    }
    fn provider(&self) -> &'static str {
        "scheduler"
    }
}
