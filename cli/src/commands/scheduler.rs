//! `ds scheduler run [--once]` (the runtime that keeps data flowing) and `ds status` (where each stream
//! stands).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::bail;
use providers::scheduler::runtime::{self, Options, Outcome, Platform};

use crate::{EXIT_ERROR, EXIT_OK};

#[derive(clap::Subcommand)]
pub(crate) enum SchedulerCommand {
    /// Run due jobs, as their triggers say, until stopped (SIGTERM or Ctrl-C finishes the running batch)
    #[command(
        long_about = "Run the model's scheduler jobs from the data platforms' `ds_jobs` tables (written by \
`ds apply`): claim a due job with a row lease, run one batch of its stream (ingest, merge, commit), set when it \
is due next (interval, cron in UTC; `external` jobs only run by hand with `ds merge run`), and go on. Several \
schedulers may run at once: each job runs on one of them at a time, and a job whose scheduler died is taken \
over when its lease expires. One log line per batch.\n\n\
Exit codes: 0 stopped cleanly (with --once: every due job ran and succeeded); 1 a job failed or its committed \
batch could not be archived (with --once), or the scheduler could not work."
    )]
    Run {
        /// Run every due job once, then exit (for cron and tests)
        #[arg(long)]
        once: bool,
        /// How long a lease holds before it must be renewed (`30s`, `5m`)
        #[arg(long, value_name = "DURATION", default_value = "2m")]
        lease: String,
        /// How long to wait when no job is due (`1s`, `10s`)
        #[arg(long, value_name = "DURATION", default_value = "5s")]
        poll: String,
    },
}

/// The data platforms that have jobs in the model, with their merge databases.
fn platforms(dir: &Path) -> anyhow::Result<(Vec<Platform>, providers::live::Ctx)> {
    let loaded = super::load_valid(dir)?;
    let graph = planner::compile::compile(&loaded.model)?;
    let mut platforms: Vec<Platform> = Vec::new();
    for job in graph
        .resources()
        .filter(|r| r.kind.name() == "scheduler_job")
    {
        let Some(schema) = providers::kind::first_segment(&job.address) else {
            continue;
        };
        if platforms.iter().any(|p| p.schema == schema) {
            continue;
        }
        let merge = graph
            .get(&format!("postgres_schema.{schema}"))
            .and_then(|s| providers::postgres::live::Target::of(&s.attributes));
        let Some(merge) = merge else {
            bail!("data platform `{schema}` has no merge database in the model");
        };
        platforms.push(Platform {
            schema: schema.to_string(),
            merge,
        });
    }
    let credentials = crate::credentials::source(&loaded.model, dir);
    Ok((platforms, providers::live::Ctx::new(Arc::new(credentials))))
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    planner::trigger::parse_duration(text)
        .map(Duration::from_secs)
        .map_err(|why| {
            anyhow::anyhow!("{flag} `{text}` {why}: write a duration such as `30s` or `5m`")
        })
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    runtime::utc(secs)
}

pub(crate) fn run(dir: &Path, command: &SchedulerCommand) -> anyhow::Result<u8> {
    let SchedulerCommand::Run { once, lease, poll } = command;
    let options = Options {
        once: *once,
        owner: format!(
            "{}:{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            std::process::id()
        ),
        lease: duration("--lease", lease)?,
        idle: duration("--poll", poll)?,
    };
    let (platforms, ctx) = platforms(dir)?;
    if platforms.is_empty() {
        eprintln!("No scheduler jobs in this model: nothing to run.");
        return Ok(EXIT_OK);
    }
    let rt = super::runtime()?;
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let stopping = Arc::clone(&stopping);
        rt.spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            eprintln!("{} stopping: the running batch finishes first", now());
            stopping.store(true, Ordering::SeqCst);
        });
    }
    eprintln!(
        "{} scheduler {} running the jobs of {}{}",
        now(),
        options.owner,
        platforms
            .iter()
            .map(|p| p.schema.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if options.once { " (once)" } else { "" }
    );
    let stop = || stopping.load(Ordering::SeqCst);
    let report = |run: &runtime::Run| match &run.outcome {
        Outcome::Ran(reports) => {
            for r in reports {
                println!("{} {}", now(), super::merge::describe(r));
                if let Some(archive) = super::merge::describe_archive(r) {
                    println!("{} {archive}", now());
                }
            }
        }
        Outcome::Failed(why) => println!("{} {}: FAILED: {why}", now(), run.job),
    };
    let runs = rt.block_on(runtime::run(&ctx, &platforms, &options, &stop, &report))?;
    // A batch committed but not archived counts as a failure for the exit code (the data moved, the
    // archive is behind).
    let failed = runs
        .iter()
        .filter(|r| match &r.outcome {
            Outcome::Failed(_) => true,
            Outcome::Ran(reports) => reports.iter().any(|r| matches!(r.archive, Some(Err(_)))),
        })
        .count();
    if options.once {
        eprintln!("{} ran {} job(s), {} failed", now(), runs.len(), failed);
        return Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK });
    }
    eprintln!("{} stopped", now());
    Ok(EXIT_OK)
}

/// `ds status`: per stream, the last committed batch, the open one, lag, the job's last run and next one.
pub(crate) fn status(dir: &Path) -> anyhow::Result<u8> {
    let (platforms, ctx) = platforms(dir)?;
    let rt = super::runtime()?;
    let mut out = String::new();
    let mut rows = Vec::new();
    for platform in &platforms {
        rows.extend(rt.block_on(runtime::status(&ctx, platform))?);
    }
    let mut table = vec![[
        "STREAM".to_string(),
        "LAST BATCH".into(),
        "COMMITTED".into(),
        "INS/UPD/DEL".into(),
        "OPEN".into(),
        "LAG".into(),
        "LAST RUN".into(),
        "NEXT RUN".into(),
        "ARCHIVE".into(),
    ]];
    for s in &rows {
        table.push([
            s.stream.clone(),
            s.last.map_or("-".into(), |l| l.0.to_string()),
            s.last.map_or("-".into(), |l| runtime::utc(l.1 as u64)),
            s.last
                .map_or("-".into(), |l| format!("{}/{}/{}", l.2, l.3, l.4)),
            s.open
                .as_ref()
                .map_or("-".into(), |(id, state)| format!("{id} {state}")),
            s.lag
                .map_or("-".into(), |l| format!("{}s", l.round() as i64)),
            s.last_run
                .as_ref()
                .map_or("-".into(), |(status, _)| status.clone()),
            s.next.map_or("by hand".into(), |n| runtime::utc(n as u64)),
            match s.unarchived {
                None => "-".into(),
                Some(0) => "up to date".into(),
                Some(n) => format!("{n} behind"),
            },
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for s in &rows {
        if let Some((status, Some(error))) = &s.last_run
            && status != "ok"
        {
            let what = if status == "failed" {
                "last run failed"
            } else {
                "last run's archive failed"
            };
            out.push_str(&format!("\n{}: {what}: {error}\n", s.stream));
        }
    }
    if rows.is_empty() {
        out = "No ingestion streams yet: `ds apply` writes the scheduler's jobs.\n".into();
    }
    crate::write_stdout(&out)?;
    Ok(EXIT_OK)
}
