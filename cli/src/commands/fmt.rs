//! `ds fmt`.

use std::path::Path;

use anyhow::Context;

use crate::views::diagnostics;
use crate::{EXIT_ERROR, EXIT_OK, stdout_color, write_stdout};

pub(crate) fn run(dir: &Path, check: bool) -> anyhow::Result<u8> {
    let sources = planner::source::read_dir(dir)?;
    let syntax_errors = planner::lower::syntax_errors(&sources);
    let mut changed = Vec::new();
    for (id, file) in sources.iter() {
        if syntax_errors.iter().any(|d| d.span.file == id) {
            continue;
        }
        let formatted = planner::fmt::format_source(&file.text);
        if formatted != file.text {
            if !check {
                write_atomically(&file.path, &formatted)?;
            }
            changed.push(file.name.as_str());
        }
    }
    let mut out = diagnostics::text(&sources, &syntax_errors, stdout_color());
    for name in &changed {
        out.push_str(name);
        out.push('\n');
    }
    write_stdout(&out)?;
    if !syntax_errors.is_empty() {
        eprintln!(
            "error: {} file(s) have syntax errors and were left alone",
            syntax_errors.len()
        );
        return Ok(EXIT_ERROR);
    }
    if check && !changed.is_empty() {
        eprintln!(
            "{} file(s) are not in canonical layout: run `ds fmt` to rewrite them",
            changed.len()
        );
        return Ok(EXIT_ERROR);
    }
    Ok(EXIT_OK)
}

/// Writes a file through a temporary sibling and a rename, so a crash never leaves half a file.
pub(crate) fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".ds-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("failed to replace `{}`", path.display()))?;
    Ok(())
}
