//! `ds`: the command line. It parses arguments, reads the environment, calls the library crates, renders
//! what they return (text, JSON) and chooses the exit code. It holds no model logic of its own.

mod render;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use planner::diag::Severity;

/// Exit code: success.
const EXIT_OK: u8 = 0;
/// Exit code: an error (bad model, failed operation, or `fmt --check` found files to change).
const EXIT_ERROR: u8 = 1;

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
Exit codes: 0 success; 1 error (invalid model, failed operation).",
    after_help = "Start with `ds validate -C examples/quickstart`. The model language is described in docs/model-language.md."
)]
struct Cli {
    /// The model directory (default: the current directory).
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
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable, with source snippets
    Text,
    /// One JSON document
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Validate { format } => validate(&cli.dir, *format),
        Command::Fmt { check } => fmt(&cli.dir, *check),
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
fn stdout_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn validate(dir: &Path, format: Format) -> anyhow::Result<u8> {
    let sources = planner::source::read_dir(dir)?;
    let (model, diagnostics) = planner::check(&sources);
    let output = match format {
        Format::Json => render::json(&sources, &diagnostics),
        Format::Text => {
            let mut out = render::text(&sources, &diagnostics, stdout_color());
            let errors = diagnostics.count(Severity::Error);
            let warnings = diagnostics.count(Severity::Warning);
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            if errors > 0 {
                out.push_str(&format!(
                    "The model is invalid: {}, {}.\n",
                    plural(errors, "error"),
                    plural(warnings, "warning")
                ));
            } else {
                let stores: usize = model.teams.iter().map(|t| t.datastores.len()).sum();
                let datasets: usize = model
                    .teams
                    .iter()
                    .flat_map(|t| t.datastores.iter())
                    .map(|s| s.datasets.len())
                    .sum();
                let workspaces: usize = model.teams.iter().map(|t| t.workspaces.len()).sum();
                out.push_str(&format!(
                    "The model is valid: {}, {}, {}, {}, {}{}.\n",
                    plural(sources.len(), "file"),
                    plural(model.teams.len(), "team"),
                    plural(stores, "datastore"),
                    plural(datasets, "dataset"),
                    plural(workspaces, "workspace"),
                    if warnings > 0 {
                        format!(" ({})", plural(warnings, "warning"))
                    } else {
                        String::new()
                    }
                ));
            }
            out
        }
    };
    write_stdout(&output)?;
    Ok(if diagnostics.has_errors() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

fn fmt(dir: &Path, check: bool) -> anyhow::Result<u8> {
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
    let mut out = render::text(&sources, &syntax_errors, stdout_color());
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
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("hcl.ds-fmt-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("failed to replace `{}`", path.display()))?;
    Ok(())
}
