//! The integration suite: one binary, one module per feature.

mod apply;
mod cli;
mod plan;
mod validate;
