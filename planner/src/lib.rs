//! The planner: everything `ds` does with a model that needs no network, clock or environment.
//!
//! It owns the model language's front end (finding and reading model files, parsing them with byte spans,
//! lowering them into the typed [`model::Model`], and validating it into a list of [`diag::Diagnostic`]s) and
//! the canonical formatter. Later it compiles the model into the resource graph and diffs it against state.
//!
//! It must not print, read environment variables, or know about output formats: the `cli` renders what this
//! crate returns. Problems in the user's model are data (diagnostics), never `Err`.

pub mod apply;
pub mod check;
pub mod codes;
pub mod compile;
pub mod diag;
pub mod fmt;
pub mod lower;
pub mod model;
pub mod names;
pub mod plan;
pub mod planfile;
pub mod refresh;
pub mod source;
pub mod template;
pub mod trigger;
pub use providers::types;
pub mod validate;

use diag::Diagnostics;
use model::Model;
use source::Sources;

/// Lowers and validates a model: the model (as far as it lowered) and every problem, sorted by place.
pub fn check(sources: &Sources) -> (Model, Diagnostics) {
    let (model, mut diagnostics) = lower::lower(sources);
    // With a file missing from the model, relations between objects cannot be judged fairly: an unparsed
    // file may hold the ecosystem or the store a sink names.
    if !diagnostics.iter().any(|d| d.code == codes::SYNTAX.code) {
        validate::validate(&model, &mut diagnostics);
    }
    diagnostics.sort();
    (model, diagnostics)
}
