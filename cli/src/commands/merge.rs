//! `ds merge run DATA_PLATFORM STORE [--dataset D]`: one batch of one ingestion stream, now.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::{EXIT_ERROR, EXIT_OK};

#[derive(clap::Subcommand)]
pub(crate) enum MergeCommand {
    /// Run one batch of a stream now: ingest the source into staging, merge into the merge tables, commit
    #[command(
        long_about = "Run one batch of the ingestion stream of STORE on DATA_PLATFORM: open a batch (or resume \
the one a stopped run left open), read the source into the staging tables, merge them into the merge tables \
(live or forensic, as the data platform says) and commit, all datasets of the batch in one transaction. A store \
captured one dataset at a time needs --dataset. The model says where the source and the merge database are; \
credentials are resolved as for `ds apply`.\n\n\
A data platform with an archive_bucket then writes every committed batch not archived yet to the archive.\n\n\
Exit codes: 0 the batch committed (also when nothing changed) and, with an archive, is archived; 1 it failed \
(nothing of it was committed: run it again after the fix), or it committed but could not be archived (said so \
on stderr: the next run archives it)."
    )]
    Run {
        /// The data platform (its schema in the merge database)
        data_platform: String,
        /// The datastore
        store: String,
        /// The dataset, for a store captured one dataset at a time (SINGLE_DATASET)
        #[arg(long)]
        dataset: Option<String>,
    },
}

pub(crate) fn run(dir: &Path, command: &MergeCommand) -> anyhow::Result<u8> {
    let MergeCommand::Run {
        data_platform,
        store,
        dataset,
    } = command;
    let loaded = super::load_valid(dir)?;
    let graph = planner::compile::compile(&loaded.model)?;
    let (dp, store) = (
        data_platform.to_ascii_lowercase(),
        store.to_ascii_lowercase(),
    );
    let single = dataset
        .as_ref()
        .map(|d| format!("scheduler_job.{dp}.{store}__{}", d.to_ascii_lowercase()));
    let whole = format!("scheduler_job.{dp}.{store}");
    let job = single
        .as_deref()
        .and_then(|a| graph.get(a))
        .or_else(|| graph.get(&whole));
    let Some(job) = job else {
        let streams: Vec<&str> = graph
            .resources()
            .filter(|r| r.kind.name() == "scheduler_job")
            .filter_map(|r| r.address.strip_prefix("scheduler_job."))
            .filter(|a| !a.contains(".transformer__"))
            .collect();
        bail!(
            "no ingestion stream `{dp}.{store}`{}: the streams of this model are {}",
            dataset
                .as_ref()
                .map_or(String::new(), |d| format!(" (dataset `{d}`)")),
            streams.join(", ")
        );
    };
    // A whole-store job runs every dataset unless one is named.
    let only = if single.as_deref() == Some(job.address.as_str()) {
        None
    } else {
        dataset.as_deref().map(str::to_ascii_lowercase)
    };
    let credentials = crate::credentials::source(&loaded.model, dir);
    let ctx = providers::live::Ctx::new(Arc::new(credentials));
    let report = super::runtime()?
        .block_on(providers::scheduler::engine::run_batch(
            &ctx,
            &job.attributes,
            only.as_deref(),
        ))
        .with_context(|| format!("batch of {dp}.{store} failed; the batch was not committed (run it again after the fix)"))?;
    println!("{}", describe(&report));
    if let Some(archive) = describe_archive(&report) {
        eprintln!("{archive}");
    }
    // Committed but not archived: the data moved, but the archive is behind (exit 1, as a failure).
    Ok(if matches!(report.archive, Some(Err(_))) {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// `ds rebuild DATA_PLATFORM STORE`: the store's merge tables recreated from the archive alone.
pub(crate) fn rebuild(
    dir: &Path,
    data_platform: &str,
    store: &str,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let loaded = super::load_valid(dir)?;
    let graph = planner::compile::compile(&loaded.model)?;
    let (dp, store) = (
        data_platform.to_ascii_lowercase(),
        store.to_ascii_lowercase(),
    );
    let whole = format!("scheduler_job.{dp}.{store}");
    let single = format!("{whole}__");
    let jobs: Vec<_> = graph
        .resources()
        .filter(|r| r.kind.name() == "scheduler_job")
        .filter(|r| r.address == whole || r.address.starts_with(&single))
        .collect();
    if jobs.is_empty() {
        bail!("no ingestion stream `{dp}.{store}`");
    }
    let credentials = crate::credentials::source(&loaded.model, dir);
    let ctx = providers::live::Ctx::new(Arc::new(credentials));
    let runtime = super::runtime()?;
    if dry_run {
        for job in jobs {
            let plan = runtime
                .block_on(providers::scheduler::archive::rebuild_plan(
                    &ctx,
                    &job.attributes,
                ))
                .with_context(|| format!("the archive of {dp}.{store} cannot be rebuilt from"))?;
            let base = plan.base.map_or(String::new(), |(batch, rows)| {
                format!("load the base after batch {batch} ({rows} rows), ")
            });
            println!(
                "{}: the archive is whole: a rebuild would {base}replay {} batches, {} rows, up to batch {}",
                plan.stream, plan.batches, plan.rows, plan.last
            );
        }
        return Ok(EXIT_OK);
    }
    for job in jobs {
        let started = std::time::Instant::now();
        // Progress on stderr: a bar on a terminal, otherwise a line at most every 10 seconds.
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} batches replayed {elapsed_precise}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let last_line = std::sync::Mutex::new(std::time::Instant::now());
        let progress = |done: usize, total: usize| match &bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            None => {
                if let Ok(mut last) = last_line.lock()
                    && last.elapsed() >= std::time::Duration::from_secs(10)
                {
                    *last = std::time::Instant::now();
                    eprintln!("{dp}.{store}: {done} of {total} batches replayed");
                }
            }
        };
        let rebuilt = runtime
            .block_on(providers::scheduler::archive::rebuild(
                &ctx,
                &job.attributes,
                &progress,
            ))
            .with_context(|| {
                format!("rebuilding {dp}.{store} failed; the merge tables were not changed")
            });
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let rebuilt = rebuilt?;
        let base = rebuilt.base.map_or(String::new(), |(batch, rows)| {
            format!("loaded the base after batch {batch} ({rows} rows), ")
        });
        println!(
            "{}: {base}replayed {} batches, {} rows; the merge tables are at batch {}",
            rebuilt.stream, rebuilt.batches, rebuilt.rows, rebuilt.last
        );
        eprintln!(
            "{}: rebuilt in {:.2} s",
            rebuilt.stream,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(EXIT_OK)
}

/// What an archiving data platform's run did with its archive, on one line (nothing archived: `None`).
pub(crate) fn describe_archive(report: &providers::scheduler::engine::Report) -> Option<String> {
    match &report.archive {
        Some(Ok(n)) if *n > 0 => Some(format!(
            "{}: archived {n} batch(es) in {:.2} s",
            report.stream,
            report.archiving.as_secs_f64()
        )),
        Some(Err(e)) => Some(format!(
            "warning: {}: the batch is committed but not archived (the next run archives it): {e}",
            report.stream
        )),
        _ => None,
    }
}

/// A batch's report on one line.
pub(crate) fn describe(r: &providers::scheduler::engine::Report) -> String {
    if r.nothing_new {
        return format!("{}: nothing new since batch {}", r.stream, r.batch);
    }
    format!(
        "{}: batch {} committed{} in {:.2} s (ingest {:.2} s, merge {:.2} s): {} staged, {} inserted, {} updated, {} deleted",
        r.stream,
        r.batch,
        if r.resumed { " (resumed)" } else { "" },
        r.elapsed.as_secs_f64(),
        r.ingest.as_secs_f64(),
        r.merge.as_secs_f64(),
        r.staged,
        r.inserted,
        r.updated,
        r.deleted
    )
}
