//! `ds graph`.

use std::path::Path;

use anyhow::bail;

use crate::views::graph;
use crate::{EXIT_OK, write_stdout};

pub(crate) fn run(dir: &Path, mermaid: bool) -> anyhow::Result<u8> {
    let loaded = super::load_valid(dir)?;
    let compiled = planner::compile::compile(&loaded.model)?;
    if let Some(cycle) = compiled.cycle() {
        bail!(
            "the resource graph has a dependency cycle: {}",
            cycle
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }
    let text = if mermaid {
        graph::mermaid(&compiled)
    } else {
        graph::dot(&compiled)
    };
    write_stdout(&text)?;
    Ok(EXIT_OK)
}
