//! Views: everything the CLI prints, as pure functions of what the library crates return.

pub(crate) mod diagnostics;
pub(crate) mod graph;
pub(crate) mod plan_markdown;
pub(crate) mod plan_text;
