//! `ds reconcile`: read reality, report drift, put it back; on a schedule with `--interval`.

use std::path::Path;
use std::time::Duration;

use super::StateArgs;
use super::plan::{PlanFormat, render};
use crate::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, write_stdout};

#[derive(clap::Args)]
pub(crate) struct ReconcileArgs {
    /// Report drift and what would correct it, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Run again after this long (`30s`, `5m`, `1h`) until stopped, one report a pass
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// Exit 2 when drift was found (0 when none, 1 on error); with --interval, about the last pass
    #[arg(long)]
    detailed_exitcode: bool,
    /// How many changes may run at once when correcting
    #[arg(long, value_name = "N", default_value_t = 10)]
    parallelism: usize,
    /// Reconcile only this address (or prefix) and what it depends on; repeatable
    #[arg(long = "target", value_name = "ADDR")]
    targets: Vec<String>,
    /// Leave out this address (or prefix) and what depends on it; repeatable
    #[arg(long = "exclude", value_name = "ADDR")]
    excludes: Vec<String>,
    /// Report format
    #[arg(long, value_enum, default_value_t)]
    format: PlanFormat,
    #[command(flatten)]
    state: StateArgs,
}

pub(crate) fn run(dir: &Path, args: &ReconcileArgs) -> anyhow::Result<u8> {
    let interval = match &args.interval {
        None => None,
        Some(text) => Some(Duration::from_secs(
            planner::trigger::parse_duration(text).map_err(|why| {
                anyhow::anyhow!(
                    "--interval `{text}` {why}: write a duration such as `30s`, `5m` or `1h`"
                )
            })?,
        )),
    };
    loop {
        let code = pass(dir, args)?;
        let Some(interval) = interval else {
            return Ok(code);
        };
        eprintln!("Next pass in {}s (Ctrl-C to stop).", interval.as_secs());
        std::thread::sleep(interval);
    }
}

/// One pass: refresh, report, correct.
fn pass(dir: &Path, args: &ReconcileArgs) -> anyhow::Result<u8> {
    let options = planner::plan::Options {
        targets: args.targets.clone(),
        excludes: args.excludes.clone(),
        replace: Vec::new(),
        allow_destroy: Vec::new(),
    };
    let made = super::plan::make(dir, options, &args.state, true)?;
    let drifted = !made.document.drift.is_empty();
    write_stdout(&render(&made.document, args.format)?)?;
    if !made.document.refused.is_empty() {
        eprintln!(
            "error: correcting would destroy data in {} protected resource(s): not corrected; use `ds apply --allow-destroy ADDR`",
            made.document.refused.len()
        );
        return Ok(EXIT_ERROR);
    }
    let failed: Vec<(String, String, serde_json::Value)> = made
        .document
        .health
        .iter()
        .filter(|h| h.level == providers::live::Level::Failed)
        .filter_map(|h| {
            let resource = made.base.resource(&h.address)?;
            Some((
                h.address.clone(),
                resource.kind.clone(),
                resource.attributes.clone(),
            ))
        })
        .collect();
    let ctx = std::sync::Arc::clone(&made.ctx);
    let mut code = EXIT_OK;
    if !args.dry_run && made.document.has_changes() {
        planner::apply::check_supported(&made.document)?;
        code = super::apply::execute(
            made.backend,
            made.document,
            made.base,
            made.ctx,
            args.parallelism,
        )?;
    }
    if !args.dry_run && code == EXIT_OK {
        heal(&ctx, &failed)?;
    }
    let drifted = drifted || !failed.is_empty();
    Ok(if code == EXIT_OK && args.detailed_exitcode && drifted {
        EXIT_CHANGES
    } else {
        code
    })
}

/// Heals what the refresh found failed (restarts a connector's failed tasks), after the corrections.
fn heal(
    ctx: &providers::live::Ctx,
    failed: &[(String, String, serde_json::Value)],
) -> anyhow::Result<()> {
    for (address, kind, attributes) in failed {
        let Some(live) = providers::kind(kind).and_then(|k| k.live()) else {
            continue;
        };
        match super::runtime()?.block_on(live.heal(ctx, address, attributes))? {
            Some(done) => eprintln!("Healed {address}: {done}."),
            None => eprintln!("{address} failed and ds cannot heal it: see its health above."),
        }
    }
    Ok(())
}
