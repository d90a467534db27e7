//! The integration suite: one binary, one module per feature.

mod cli;
mod plan;
mod validate;
