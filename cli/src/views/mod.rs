//! Views: everything the CLI prints, as pure functions of what the library crates return.

pub(crate) mod diagnostics;
pub(crate) mod graph;
pub(crate) mod plan_markdown;
pub(crate) mod plan_text;

/// Plan documents built by hand, for the renderers' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use planner::planfile::{Bindings, Change, PlanFile, Summary};

    /// A refreshed plan of `changes`, with `no_op` unchanged resources and `refused` protected ones.
    pub(crate) fn plan_of(changes: Vec<Change>, no_op: usize, refused: &[&str]) -> PlanFile {
        let count = |a: &str| changes.iter().filter(|c| c.action == a).count();
        PlanFile {
            format_version: 1,
            bindings: Bindings {
                lineage: Some("9f1c2d3e-0000-4000-8000-000000000001".into()),
                serial: 7,
                model_hash: "sha256:00".into(),
            },
            refreshed: true,
            summary: Summary {
                create: count("create"),
                update: count("update"),
                replace: count("replace"),
                delete: count("delete"),
                no_op,
            },
            refused: refused.iter().map(|s| s.to_string()).collect(),
            changes,
            drift: Vec::new(),
            health: Vec::new(),
        }
    }
}
