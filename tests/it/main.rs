//! The integration suite: one binary, one module per feature.

mod apply;
mod cli;
mod connect;
mod plan;
mod validate;
