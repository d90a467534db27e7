//! `xtask`: the `ds` project's developer tasks, run as `cargo xtask <command>`.
//!
//! It holds the tooling that is not part of the shipped `ds` binary:
//!
//! - `gen-model` writes a large, deterministic, valid model (a directory of `*.ds.hcl` files) for
//!   benchmarks and load tests;
//! - `bench-validate` generates models at 1k, 5k and 10k datasets, times `ds validate` on each
//!   (wall time and the child's peak RSS) and checks the performance bars.
//!
//! xtask depends on no other `ds` crate: it drives `ds` as a separate executable, exactly as a user would.

mod args;
mod bench;
mod gen_model;
mod rusage;

use std::process::ExitCode;

const USAGE: &str = "\
cargo xtask <command> [options]

Commands:
  gen-model       Write a valid, deterministic benchmark model.
      --out DIR                 directory to write (created; its *.ds.hcl files are removed first)
      --stores N                number of datastores (>= 1)
      --datasets-per-store M    datasets in each store (>= 1)
      --workspaces W            number of workspaces (>= 0)
      --files F                 group the team blocks into F files (default: one file per team)

  bench-validate  Time `ds validate` on generated models of 1k, 5k and 10k datasets.
      --ds PATH                 ds executable (default: target/release/ds, built first with
                                `cargo build --release -p cli`)
      --runs R                  measured runs per size (default 5; one warm-up run is added)
      --subcommand \"ARGS\"       the ds subcommand to time, split on whitespace (default \"validate\");
                                `-C <model dir>` is appended
      --cpu N                   pin the child to CPU N with `taskset -c N` (default 0)
      --no-pin                  do not pin the child to a CPU
      --seed-state              write the state an apply would leave (<model>/.ds/state.json) first
      --max-ms MS               the bar for the 10k median (default 1000)
      --max-rss-mib MIB         the bar for the peak RSS (default 300)
      `{dir}` in --subcommand stands for the model directory.

  Plan benchmarks (docs/benchmarks.md):
      cargo xtask bench-validate --subcommand \"plan --refresh=false --state {dir}/.ds/none.json\" \
          --max-ms 2000 --max-rss-mib 500                       # against an empty state
      cargo xtask bench-validate --seed-state --subcommand \"plan --refresh=false\" \
          --max-ms 2000 --max-rss-mib 500                       # against the state of the applied model

  help            Print this text.
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    };
    let result = match command.as_str() {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        "gen-model" => gen_model::cli(rest),
        "bench-validate" => bench::cli(rest),
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
