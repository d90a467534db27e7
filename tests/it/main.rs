//! The integration suite: one binary, one module per feature.

mod apply;
mod archive;
mod check;
mod cli;
mod connect;
mod faults;
mod merge;
mod plan;
mod s3;
mod serve;
mod state_s3;
mod validate;
