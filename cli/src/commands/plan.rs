//! `ds plan` and `ds show`.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use planner::planfile::{Bindings, PlanFile};

use super::StateArgs;
use crate::views::{plan_markdown, plan_text};
use crate::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, stdout_color, write_stdout};

/// The largest markdown plan: GitHub refuses comments over 65,536 characters.
const MARKDOWN_LIMIT: usize = 60_000;

#[derive(Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum PlanFormat {
    /// For a terminal or a log: symbols, grouped by provider and type
    #[default]
    Text,
    /// A pull-request comment: summary table, banners, collapsible details
    Markdown,
    /// The plan document of docs/plan-format.md
    Json,
}

#[derive(clap::Args)]
pub(crate) struct PlanArgs {
    /// Save the plan to FILE (JSON); `ds show FILE` renders it, `ds apply FILE` applies exactly it
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Plan only this address (or every address under this prefix) and what it depends on; repeatable
    #[arg(long = "target", value_name = "ADDR")]
    targets: Vec<String>,
    /// Leave out this address (or prefix) and everything that depends on it; repeatable
    #[arg(long = "exclude", value_name = "ADDR")]
    excludes: Vec<String>,
    /// Replace this resource even if it has not changed; repeatable
    #[arg(long = "replace", value_name = "ADDR")]
    replace: Vec<String>,
    /// Allow the plan to delete or replace this protected (data-bearing) resource; repeatable
    #[arg(long = "allow-destroy", value_name = "ADDR")]
    allow_destroy: Vec<String>,
    /// Exit 2 when the plan has changes (0 when none, 1 on error)
    #[arg(long)]
    detailed_exitcode: bool,
    /// Read the real systems before planning (`--refresh=false`: plan against the recorded state only)
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    refresh: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: PlanFormat,
    #[command(flatten)]
    state: StateArgs,
    /// First judge the change from --base (ownership, compatibility, consumers; see `ds check`) and put the
    /// verdict above the plan; exit 3 when it is refused
    #[command(flatten)]
    change: super::check::ChangeArgs,
}

#[derive(clap::Args)]
pub(crate) struct ShowArgs {
    /// A plan saved with `ds plan --out FILE`; without it, the recorded state is shown
    plan: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: PlanFormat,
    #[command(flatten)]
    state: StateArgs,
}

pub(crate) fn render(plan: &PlanFile, format: PlanFormat) -> anyhow::Result<String> {
    Ok(match format {
        PlanFormat::Text => plan_text::render(plan, stdout_color()),
        PlanFormat::Markdown => plan_markdown::render(plan, MARKDOWN_LIMIT),
        PlanFormat::Json => serde_json::to_string_pretty(plan)? + "\n",
    })
}

/// What a plan was made from, kept for `ds apply`.
pub(crate) struct Made {
    pub(crate) backend: super::StateBackend,
    pub(crate) document: PlanFile,
    /// The state the plan was made against: the recorded one, refreshed when asked.
    pub(crate) base: ::state::State,
    /// Credentials and connections: the refresh's, which an apply reuses.
    pub(crate) ctx: Arc<providers::live::Ctx>,
}

/// Validates, compiles and diffs the model against its state.
pub(crate) fn make(
    dir: &Path,
    options: planner::plan::Options,
    state_args: &StateArgs,
    refresh: bool,
) -> anyhow::Result<Made> {
    make_from(super::load_valid(dir)?, dir, options, state_args, refresh)
}

/// [`make`] of a model already loaded (`ds plan --head REV` plans the model of that revision).
fn make_from(
    loaded: super::Loaded,
    dir: &Path,
    options: planner::plan::Options,
    state_args: &StateArgs,
    refresh: bool,
) -> anyhow::Result<Made> {
    let mut graph = planner::compile::compile(&loaded.model)?;
    if let Some(cycle) = graph.cycle() {
        bail!(
            "the resource graph has a dependency cycle: {}",
            cycle.join(" → ")
        );
    }
    let backend = super::backend(dir, Some(&loaded.model), state_args)?;
    let recorded = state::Backend::read(&*backend)?;
    let bindings = Bindings {
        lineage: recorded.as_ref().map(|s| s.lineage.clone()),
        serial: recorded.as_ref().map_or(0, |s| s.serial),
        model_hash: planner::planfile::model_hash(&loaded.sources),
    };
    let prior = recorded.unwrap_or_default();
    // Connections open on first use: a plan without refresh opens none.
    let credentials = crate::credentials::source(&loaded.model, dir);
    let ctx = Arc::new(providers::live::Ctx::new(Arc::new(credentials)));
    let (base, drift) = if refresh {
        let (refreshed, drift) = super::runtime()?.block_on(planner::refresh::refresh(
            &prior,
            Some(&graph),
            Arc::clone(&ctx),
            10,
        ))?;
        (refreshed, Some(drift))
    } else {
        (prior, None)
    };
    let plan = planner::plan::plan(&mut graph, &base, &options)?;
    // Freeing a large graph is work the process exit does for free.
    std::mem::forget(graph);
    let mut document = PlanFile::new(plan, bindings);
    if let Some(drift) = drift {
        document.set_drift(drift);
        document.health = ctx.take_health();
    }
    // Freeing a large model is, likewise, work for the process exit.
    std::mem::forget(loaded);
    Ok(Made {
        backend,
        document,
        base,
        ctx,
    })
}

impl PlanArgs {
    fn options(&self) -> planner::plan::Options {
        planner::plan::Options {
            targets: self.targets.clone(),
            excludes: self.excludes.clone(),
            replace: self.replace.clone(),
            allow_destroy: self.allow_destroy.clone(),
        }
    }
}

pub(crate) fn run(dir: &Path, args: &PlanArgs) -> anyhow::Result<u8> {
    // With --base: the verdict first, and the plan of the judged head.
    let judged = match &args.change.base {
        Some(_) => Some(super::check::judge(dir, &args.change)?),
        None => None,
    };
    let made = match &judged {
        Some(judged) if judged.head_rev.is_some() => make_from(
            super::Loaded {
                sources: judged.head.clone(),
                model: judged.head_model.clone(),
            },
            dir,
            args.options(),
            &args.state,
            args.refresh,
        )?,
        _ => make(dir, args.options(), &args.state, args.refresh)?,
    };
    let document = &made.document;
    let rendered = match (&judged, args.format) {
        (None, format) => render(document, format)?,
        (Some(judged), PlanFormat::Text) => {
            format!(
                "{}
{}",
                judged.text(),
                render(document, PlanFormat::Text)?
            )
        }
        (Some(judged), PlanFormat::Markdown) => {
            // One pull-request comment: the verdict, then as much of the plan as fits.
            let verdict = judged.markdown();
            let limit = MARKDOWN_LIMIT.saturating_sub(verdict.len() + 2);
            format!(
                "{verdict}
{}",
                plan_markdown::render(document, limit)
            )
        }
        (Some(judged), PlanFormat::Json) => {
            let mut value = serde_json::to_value(document)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("check".into(), judged.json());
            }
            serde_json::to_string_pretty(&value)? + "\n"
        }
    };
    write_stdout(&rendered)?;
    if judged.as_ref().is_some_and(|j| !j.verdict.allowed()) {
        eprintln!("error: the change is refused (see the verdict above); nothing was saved");
        std::mem::forget(made);
        std::mem::forget(judged);
        return Ok(super::check::EXIT_REFUSED);
    }
    std::mem::forget(judged);
    if !document.refused.is_empty() {
        eprintln!(
            "error: plan refused: it would destroy data in {} protected resource(s) (listed above); nothing was saved",
            document.refused.len()
        );
        return Ok(EXIT_ERROR);
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(document)? + "\n";
        super::fmt::write_atomically(out, &text)
            .with_context(|| format!("failed to save the plan to `{}`", out.display()))?;
        eprintln!(
            "Saved the plan to {}: `ds show {0}` renders it; `ds apply {0}` applies exactly it.",
            out.display()
        );
    }
    let changes = document.has_changes();
    std::mem::forget(made);
    Ok(if args.detailed_exitcode && changes {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

pub(crate) fn show(dir: &Path, args: &ShowArgs) -> anyhow::Result<u8> {
    if let Some(path) = &args.plan {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read plan file `{}`", path.display()))?;
        let document = planner::planfile::parse(&text, &path.display().to_string())?;
        write_stdout(&render(&document, args.format)?)?;
        return Ok(EXIT_OK);
    }
    let backend = super::backend_for_dir(dir, &args.state)?;
    let Some(recorded) = state::Backend::read(&*backend)? else {
        eprintln!(
            "No state yet at {}: nothing has been applied.",
            state::Backend::describe(&*backend)
        );
        return Ok(EXIT_OK);
    };
    let out = match args.format {
        PlanFormat::Json => serde_json::to_string_pretty(&recorded)? + "\n",
        _ => {
            let mut out = format!(
                "State at {} (serial {}, lineage {}): {} resources\n",
                state::Backend::describe(&*backend),
                recorded.serial,
                recorded.lineage,
                recorded.resources.len()
            );
            for resource in &recorded.resources {
                out.push_str(&format!("  {}\n", resource.address));
            }
            out
        }
    };
    write_stdout(&out)?;
    Ok(EXIT_OK)
}
