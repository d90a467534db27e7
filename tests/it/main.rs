//! The integration suite: one binary, one module per feature.

mod apply;
mod check;
mod cli;
mod connect;
mod merge;
mod plan;
mod serve;
mod validate;
