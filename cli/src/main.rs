//! `ds`: the command line. It parses arguments, reads the environment, calls the library crates, renders
//! what they return (text, markdown, JSON) and chooses the exit code. It holds no model logic of its own.

// The OpenAPI document (serve/openapi.rs) is one large `json!` literal.
#![recursion_limit = "256"]

mod commands;
mod credentials;
mod serve;
mod views;

/// mimalloc: planning a large model makes millions of small allocations (parse trees, JSON attributes),
/// and glibc's allocator spent a third of the time of a 10,000-dataset plan in them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code: success (and, with `--detailed-exitcode`, no changes).
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: an error (bad model, failed operation, refused plan).
pub(crate) const EXIT_ERROR: u8 = 1;
/// Exit code with `--detailed-exitcode`: success, and there are changes.
pub(crate) const EXIT_CHANGES: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ds",
    version,
    about = "Declarative data pipelines: model datastores, datasets and workspaces in HCL; plan, apply and reconcile them",
    long_about = "ds reads a model of an enterprise data ecosystem — who produces which datasets, who consumes \
them, with what history, under which governance — from *.ds.hcl files, and keeps a data platform (Postgres, \
Kafka Connect with Debezium, S3, a merge scheduler) matching it.\n\n\
Model files are every *.ds.hcl file under the model directory (-C, default .), recursively; hidden \
directories are skipped.\n\n\
Exit codes: 0 success; 1 error (invalid model, failed operation, refused plan); 2 with --detailed-exitcode, \
success with changes present.",
    after_help = "Start with `ds validate -C examples/quickstart`, then `ds plan -C examples/quickstart`. The model language is described in docs/model-language.md."
)]
struct Cli {
    /// The model directory (default: the current directory)
    #[arg(
        short = 'C',
        long = "dir",
        global = true,
        value_name = "DIR",
        default_value = "."
    )]
    dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check the model: syntax, names, references, policies, data platform choice
    #[command(
        long_about = "Parse every model file and check every rule of the model language: structure \
and names, declarations, schemas and keys, classifications, captures, workspaces and their sinks, governance \
policies, the data platform of each dataset group, transformers, and platforms.\n\n\
All problems are reported in one run, each with its code (DSxxxx), file:line:col, the source line and what to \
do. Warnings do not make a model invalid.\n\n\
Exit codes: 0 the model is valid (warnings allowed); 1 it has errors, or could not be read."
    )]
    Validate {
        /// Output format: `text` (snippets, for people) or `json` (for programs)
        #[arg(long, value_enum, default_value_t = DiagnosticsFormat::Text)]
        format: DiagnosticsFormat,
    },
    /// Rewrite model files in canonical layout (indentation, aligned `=`), keeping comments
    #[command(
        long_about = "Rewrite every *.ds.hcl file under the model directory in canonical layout: two-space \
indentation, aligned `=` in runs of attributes, normalised spacing, no trailing whitespace, one blank line at most. \
Comments and heredoc bodies are kept as they are. Files with syntax errors are reported and left alone.\n\n\
Exit codes: 0 done (or, with --check, nothing to change); 1 with --check, some files would change, or a file \
has a syntax error."
    )]
    Fmt {
        /// Change nothing; list the files that are not in canonical layout and exit 1 if there are any
        #[arg(long)]
        check: bool,
    },
    /// Judge a change like a pull request: who may change what, backwards compatibility, consumers
    #[command(
        long_about = "Read the model at --base (a git revision) and at --head (a revision, default the working \
tree), validate both, and judge the change between them:\n\n\
- ownership: every ownership region that differs (the ecosystem block, platforms and assignments: the \
ecosystem's repo; each zone: its zone_declaration's repo; each team: its team_declaration's repo) must be \
owned by the actor, the repository and branch the change comes from (--actor, or the pull request's head in \
GitHub Actions). Owners are read from the base.\n\
- compatibility: datasets are removed only once deprecated and unconsumed; columns, keys, partitions, \
nullability and classifications stay; types only widen; new columns are nullable. New datasets and stores \
are always allowed.\n\
- consumers: no sink may be left pointing at a removed dataset.\n\n\
Models are read straight from git objects (no checkout), so a CI clone with only the base and the head \
fetched is enough.\n\n\
Exit codes: 0 the change is allowed; 3 it is refused; 1 error (a revision not found, an invalid model, a bad \
--actor)."
    )]
    Check(commands::check::CheckArgs),
    /// Show what applying the model would change: creates (+), updates (~), replaces (-/+), deletes (-)
    #[command(
        long_about = "Validate and compile the model into resources (Postgres schemas, tables, views, \
roles and grants; Debezium publications, slots and connectors; buckets; scheduler jobs), compare them with the \
recorded state and show every change, grouped by provider and type.\n\n\
Resources that hold data (tables, replication slots, buckets) are protected: a plan that would delete or replace \
one is refused unless --allow-destroy names it.\n\n\
Exit codes: 0 success (with --detailed-exitcode: no changes); 1 error or refused plan; 2 with \
--detailed-exitcode, success with changes."
    )]
    Plan(commands::plan::PlanArgs),
    /// Make it so: apply the plan (or a saved plan file) in dependency order, recording state as it goes
    #[command(
        long_about = "Plan (or read a plan saved with `ds plan --out FILE`), show it, ask, then apply \
it: changes run in dependency order (deletes in reverse), up to --parallelism at once; each finished resource \
is recorded in the state; a failure stops what depends on it and lets independent changes finish. A saved plan \
is refused when the state or the model changed since it was made. Ctrl-C stops starting new changes, waits for \
those in flight and saves the state.\n\n\
Credentials are resolved when ds connects: `<NAME>_USER` and `<NAME>_PASSWORD` for a credential NAME (or files \
in the credentials directory the platform names).\n\n\
Exit codes: 0 applied (or nothing to do); 1 a change failed, the plan was refused, or the apply was cancelled."
    )]
    Apply(commands::apply::ApplyArgs),
    /// Read the real systems, report drift (changes made outside ds), and put it back
    #[command(
        long_about = "Refresh every recorded resource from the real systems, report what changed outside \
ds (drift) and the changes that correct it, then apply them (unless --dry-run). With --interval it runs again \
after each pass until stopped: one report a pass. Corrections that would destroy data in a protected resource \
are not made.\n\n\
Exit codes: 0 done (with --detailed-exitcode: no drift); 1 error or a correction failed; 2 with \
--detailed-exitcode, drift was found (and corrected unless --dry-run)."
    )]
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Adopt an object that already exists (a table made by hand, say) into the state
    #[command(
        long_about = "Read an object the model describes but the state does not record, and record it as \
it is: the next plan shows only how it really differs from the model, instead of creating it."
    )]
    Import(commands::import::ImportArgs),
    /// Render a saved plan file (or, without one, the recorded state)
    Show(commands::plan::ShowArgs),
    /// Print the resource graph of the model (Graphviz DOT or Mermaid)
    Graph {
        /// Output format
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Inspect and repair the recorded state: list, show, rm, push, unlock
    #[command(subcommand)]
    State(commands::state::StateCommand),
    /// Move data now: `ds merge run DATA_PLATFORM STORE` runs one batch of an ingestion stream
    #[command(subcommand)]
    Merge(commands::merge::MergeCommand),
    /// Recreate a store's merge tables from its data platform's batch archive alone
    #[command(
        long_about = "Recreate the merge tables of STORE on DATA_PLATFORM from the data platform's \
archive_bucket alone: the archive's manifests are read and the archive checked whole (every batch from the \
first, or from its newest base, to the last), then, in one transaction, the merge tables are truncated, the base \
loaded if there is one, and every batch replayed in order through the same merge as `ds merge run`, each \
object checked against its manifest's SHA-256 and row count as it is loaded. The batch counter and metrics get \
back what they lack (after losing the merge database: `ds apply`, then `ds rebuild`). Reports the base, how \
many batches and rows it replayed, and the batch the merge tables are at.\n\n\
With --dry-run: the archive is listed and checked (manifests only; the objects themselves are checked as a \
rebuild loads them), and what a rebuild would replay is printed; nothing is changed.\n\n\
Exit codes: 0 rebuilt (with --dry-run: the archive is whole); 1 it failed (the merge tables are as they were)."
    )]
    Rebuild {
        /// The data platform (it must have an archive_bucket)
        data_platform: String,
        /// The datastore
        store: String,
        /// Check that the archive is whole and say what a rebuild would replay, changing nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Keep data flowing: `ds scheduler run [--once]` runs the jobs as their triggers say
    #[command(subcommand)]
    Scheduler(commands::scheduler::SchedulerCommand),
    /// Where each ingestion stream stands: last committed batch, open batch, lag, last and next run
    Status,
    /// Serve the model as a read-only REST API (JSON) for the programs that consume it
    #[command(
        long_about = "Read and validate the model once (or the model at --rev, from git), then serve it as \
read-only JSON over HTTP: the ecosystem, zones, teams, datastores, each dataset's schema (also as JSON Schema \
and as an Avro record schema), workspaces with the views a consumer reads, and the dependants of a store. \
GET /openapi.json describes every endpoint; GET /healthz says the model is loaded. Every response is computed \
at start-up and carries the model hash as its ETag (If-None-Match gives 304), so many copies can run behind a \
load balancer. An invalid model is refused: nothing is served.\n\n\
Stops on SIGTERM or Ctrl-C. Exit codes: 0 stopped; 1 the model is invalid or the address cannot be used."
    )]
    Serve(serve::ServeArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiagnosticsFormat {
    /// Human-readable, with source snippets
    Text,
    /// One JSON document
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT
    Dot,
    /// A Mermaid flowchart
    Mermaid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir.as_path();
    let result = match cli.command {
        Command::Validate { format } => {
            commands::validate::run(dir, format == DiagnosticsFormat::Json)
        }
        Command::Fmt { check } => commands::fmt::run(dir, check),
        Command::Check(args) => commands::check::run(dir, &args),
        Command::Plan(args) => commands::plan::run(dir, &args),
        Command::Apply(args) => commands::apply::run(dir, &args),
        Command::Reconcile(args) => commands::reconcile::run(dir, &args),
        Command::Import(args) => commands::import::run(dir, &args),
        Command::Show(args) => commands::plan::show(dir, &args),
        Command::Graph { format } => commands::graph::run(dir, format == GraphFormat::Mermaid),
        Command::State(command) => commands::state::run(dir, &command),
        Command::Merge(command) => commands::merge::run(dir, &command),
        Command::Rebuild {
            data_platform,
            store,
            dry_run,
        } => commands::merge::rebuild(dir, &data_platform, &store, dry_run),
        Command::Scheduler(command) => commands::scheduler::run(dir, &command),
        Command::Status => commands::scheduler::status(dir),
        Command::Serve(args) => serve::run(dir, &args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::from(EXIT_OK);
            }
            let mut message = format!("error: {err}");
            for cause in err.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether to colour output on stdout: a terminal, and `NO_COLOR` unset or empty.
pub(crate) fn stdout_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// Writes to stdout, all at once.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
