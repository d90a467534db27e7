//! `ds apply`: make it so.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use planner::apply::Event;
use planner::planfile::PlanFile;
use providers::Action;

use super::StateArgs;
use crate::views::plan_text;
use crate::{EXIT_ERROR, EXIT_OK, stdout_color, write_stdout};

#[derive(clap::Args)]
pub(crate) struct ApplyArgs {
    /// A plan saved with `ds plan --out FILE`: apply exactly it (refused when the state or the model changed
    /// since it was made)
    plan: Option<PathBuf>,
    /// Apply without asking (required when stdin is not a terminal)
    #[arg(long)]
    auto_approve: bool,
    /// How many changes may run at once
    #[arg(long, value_name = "N", default_value_t = 10)]
    parallelism: usize,
    /// Plan only this address (or prefix) and what it depends on; repeatable
    #[arg(long = "target", value_name = "ADDR")]
    targets: Vec<String>,
    /// Leave out this address (or prefix) and what depends on it; repeatable
    #[arg(long = "exclude", value_name = "ADDR")]
    excludes: Vec<String>,
    /// Replace this resource even if it has not changed; repeatable
    #[arg(long = "replace", value_name = "ADDR")]
    replace: Vec<String>,
    /// Allow deleting or replacing this protected (data-bearing) resource; repeatable
    #[arg(long = "allow-destroy", value_name = "ADDR")]
    allow_destroy: Vec<String>,
    /// Read the real systems before planning (`--refresh=false`: plan against the recorded state only)
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    refresh: bool,
    #[command(flatten)]
    state: StateArgs,
}

fn confirm() -> anyhow::Result<bool> {
    eprint!("Apply these changes? Only `yes` is accepted: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

pub(crate) fn run(dir: &Path, args: &ApplyArgs) -> anyhow::Result<u8> {
    let options = planner::plan::Options {
        targets: args.targets.clone(),
        excludes: args.excludes.clone(),
        replace: args.replace.clone(),
        allow_destroy: args.allow_destroy.clone(),
    };
    // A saved plan is applied as it was made: no new refresh (its bindings say what it was made against).
    let refresh = args.refresh && args.plan.is_none();
    let made = super::plan::make(dir, options, &args.state, refresh)?;
    let document: PlanFile = match &args.plan {
        None => made.document,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read plan file `{}`", path.display()))?;
            let saved = planner::planfile::parse(&text, &path.display().to_string())?;
            let now = &made.document.bindings;
            if saved.bindings.model_hash != now.model_hash {
                bail!(
                    "the plan `{}` was made from another version of the model: make a new plan",
                    path.display()
                );
            }
            if saved.bindings.lineage != now.lineage || saved.bindings.serial != now.serial {
                bail!(
                    "the state changed since the plan `{}` was made (serial {} then, {} now): make a new plan",
                    path.display(),
                    saved.bindings.serial,
                    now.serial
                );
            }
            saved
        }
    };
    if !document.refused.is_empty() {
        write_stdout(&plan_text::render(&document, stdout_color()))?;
        bail!(
            "the plan would destroy data in {} protected resource(s): allow each with `--allow-destroy ADDR`",
            document.refused.len()
        );
    }
    if !document.has_changes() {
        write_stdout(&plan_text::render(&document, stdout_color()))?;
        return Ok(EXIT_OK);
    }
    planner::apply::check_supported(&document)?;
    if args.plan.is_none() {
        write_stdout(&plan_text::render(&document, stdout_color()))?;
        if !args.auto_approve {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "not applying without confirmation: stdin is not a terminal; pass `--auto-approve`"
                );
            }
            if !confirm()? {
                eprintln!("Apply cancelled: nothing was changed.");
                return Ok(EXIT_ERROR);
            }
        }
    }

    execute(
        made.backend,
        document,
        made.base,
        made.ctx,
        args.parallelism,
    )
}

/// Applies a plan that was checked and approved: locks the state, checks it did not move, runs the walk
/// with progress, and prints the summary.
pub(crate) fn execute(
    backend: super::StateBackend,
    document: PlanFile,
    base: ::state::State,
    ctx: Arc<providers::live::Ctx>,
    parallelism: usize,
) -> anyhow::Result<u8> {
    let _lock = super::lock(&*backend, "apply")?;
    let recorded = state::Backend::read(&*backend)?.unwrap_or_default();
    if recorded.serial != document.bindings.serial
        || (document.bindings.lineage.is_some()
            && Some(&recorded.lineage) != document.bindings.lineage.as_ref())
    {
        bail!("the state changed while the plan was made: make a new plan");
    }
    // Apply on top of the state the plan was made against (refreshed: what changed outside ds is recorded
    // as it is, so the changes that repair it are the only ones made).
    let mut recorded = base;
    recorded.model.hash = Some(document.bindings.model_hash.clone());
    let total = document.changes.len();
    let progress = Progress::new(total);
    let runtime = super::runtime().context("failed to start the async runtime")?;
    let outcome = runtime.block_on(async {
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nInterrupted: waiting for the changes in flight, then saving the state (Ctrl-C again to kill).");
                let _ = cancel_tx.send(true);
            }
        });
        let mut persist = |state: &mut state::State| state::Backend::write(&*backend, state);
        planner::apply::apply(
            document,
            &mut recorded,
            &mut persist,
            ctx,
            parallelism,
            &|event| progress.event(event),
            cancel_rx,
        )
        .await
    });
    progress.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // The changes were made but the state could not be written (the backend stopped answering):
        // what this apply did goes to a local file, to be recorded with `ds state push` later.
        Err(e) => return Err(errored(&recorded, &backend.describe(), e)),
    };
    let mut summary = format!(
        "Apply {}: {} changed, {} failed, {} not started.\n",
        if outcome.failed.is_empty() && !outcome.cancelled {
            "complete"
        } else if outcome.cancelled {
            "cancelled"
        } else {
            "incomplete"
        },
        outcome.done.len(),
        outcome.failed.len(),
        outcome.skipped.len()
    );
    for (address, error) in &outcome.failed {
        summary.push_str(&format!("  failed: {address}\n      {error}\n"));
    }
    if !outcome.skipped.is_empty() {
        summary.push_str(&format!(
            "  not started: {} resource(s) that wait on a failure (run `ds plan` to see them)\n",
            outcome.skipped.len()
        ));
    }
    eprint!("{summary}");
    Ok(if outcome.failed.is_empty() && !outcome.cancelled {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Where an apply whose state could not be written saves it, in the working directory.
pub(crate) const ERRORED_STATE: &str = "ds-errored.state.json";

/// Saves `recorded` (every result of the apply) to [`ERRORED_STATE`] and says what to do.
fn errored(recorded: &state::State, backend: &str, e: state::StateError) -> anyhow::Error {
    // The error and its causes (the I/O error says why the backend did not answer).
    let e = format!("{:#}", anyhow::Error::new(e));
    let saved = std::fs::write(ERRORED_STATE, state::to_bytes(recorded));
    let path = std::env::current_dir()
        .map(|d| d.join(ERRORED_STATE))
        .unwrap_or_else(|_| ERRORED_STATE.into());
    match saved {
        Ok(()) => anyhow::anyhow!(
            "the changes were made, but the state could not be written to {backend}: {e}\n\
             What this apply did is saved in {}: when the backend answers again, record it with \
             `ds state push {ERRORED_STATE}` (from this directory), then run `ds plan`. Do not delete that \
             file before: without it the state does not know what this apply created.",
            path.display()
        ),
        Err(io) => anyhow::anyhow!(
            "the changes were made, but the state could not be written to {backend}: {e}; nor could it be \
             saved to {}: {io}. Run `ds plan` when the backend answers again: resources this apply created are \
             shown as to create, and `ds import` records them",
            path.display()
        ),
    }
}

/// Progress on stderr: a bar and the changes in flight on a terminal, one line per finished change
/// otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    in_flight: Mutex<Vec<String>>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            in_flight: Mutex::new(Vec::new()),
        }
    }

    fn event(&self, event: Event) {
        let line = match &event {
            Event::Started { address, .. } => {
                if let Ok(mut list) = self.in_flight.lock() {
                    list.push(address.clone());
                }
                None
            }
            Event::Done {
                address,
                action,
                elapsed,
            } => {
                self.settle(address);
                let verb = match action {
                    Action::Create => "created",
                    Action::Update => "updated",
                    Action::Replace => "replaced",
                    Action::Delete => "deleted",
                    Action::NoOp => "left",
                };
                Some(format!(
                    "{} {verb} {address} ({:.2}s)",
                    action.symbol(),
                    elapsed.as_secs_f64()
                ))
            }
            Event::Failed { address, error } => {
                self.settle(address);
                Some(format!("! failed {address}: {error}"))
            }
            Event::Skipped { address, reason } => {
                Some(format!("  not started {address}: {reason}"))
            }
        };
        match &self.bar {
            Some(bar) => {
                if matches!(event, Event::Done { .. } | Event::Failed { .. }) {
                    bar.inc(1);
                }
                if let Some(line) = line.filter(|l| l.starts_with('!')) {
                    bar.println(line);
                }
                if let Ok(list) = self.in_flight.lock() {
                    bar.set_message(list.join(", "));
                }
            }
            None => {
                if let Some(line) = line {
                    eprintln!("{line}");
                }
            }
        }
    }

    fn settle(&self, address: &str) {
        if let Ok(mut list) = self.in_flight.lock() {
            list.retain(|a| a != address);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
