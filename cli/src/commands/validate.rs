//! `ds validate`.

use std::path::Path;

use planner::diag::Severity;

use crate::views::diagnostics;
use crate::{EXIT_ERROR, EXIT_OK, stdout_color, write_stdout};

pub(crate) fn run(dir: &Path, json: bool) -> anyhow::Result<u8> {
    let sources = planner::source::read_dir(dir)?;
    let (model, found) = planner::check(&sources);
    let output = if json {
        diagnostics::json(&sources, &found)
    } else {
        let mut out = diagnostics::text(&sources, &found, stdout_color());
        let errors = found.count(Severity::Error);
        let warnings = found.count(Severity::Warning);
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        if errors > 0 {
            out.push_str(&format!(
                "The model is invalid: {}, {}.\n",
                plural(errors, "error"),
                plural(warnings, "warning")
            ));
        } else {
            let stores: usize = model.teams.iter().map(|t| t.datastores.len()).sum();
            let datasets: usize = model
                .teams
                .iter()
                .flat_map(|t| t.datastores.iter())
                .map(|s| s.datasets.len())
                .sum();
            let workspaces: usize = model.teams.iter().map(|t| t.workspaces.len()).sum();
            out.push_str(&format!(
                "The model is valid: {}, {}, {}, {}, {}{}.\n",
                plural(sources.len(), "file"),
                plural(model.teams.len(), "team"),
                plural(stores, "datastore"),
                plural(datasets, "dataset"),
                plural(workspaces, "workspace"),
                if warnings > 0 {
                    format!(" ({})", plural(warnings, "warning"))
                } else {
                    String::new()
                }
            ));
        }
        out
    };
    write_stdout(&output)?;
    Ok(if found.has_errors() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}
