//! `cargo xtask bench-validate`: times a `ds` subcommand (by default `validate`) on generated models.
//!
//! For each size it generates a model into `target/bench-models/<size>/`, runs
//! `taskset -c <cpu> <ds> <subcommand...> -C <dir>` once as a warm-up and then `--runs` times, and records
//! each run's wall time (`Instant`, spawn to reap) and the child's peak RSS (`wait4`). It prints a
//! Markdown table and checks the bars; any failing run or bar makes it exit non-zero.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Flags;
use crate::gen_model::Summary;
use crate::rusage;

/// One model size of the benchmark.
#[derive(Debug, Clone, Copy)]
struct Size {
    label: &'static str,
    stores: usize,
    datasets_per_store: usize,
    workspaces: usize,
}

const SIZES: [Size; 3] = [
    Size {
        label: "1k",
        stores: 100,
        datasets_per_store: 10,
        workspaces: 20,
    },
    Size {
        label: "5k",
        stores: 500,
        datasets_per_store: 10,
        workspaces: 100,
    },
    Size {
        label: "10k",
        stores: 1_000,
        datasets_per_store: 10,
        workspaces: 200,
    },
];

/// The bars: the largest size's median wall time, every run's peak RSS, and the largest-to-smallest
/// median ratio (10x the datasets should take at most 10x the time).
const MAX_MEDIAN_MS: f64 = 1_000.0;
const MAX_RSS_MIB: f64 = 300.0;
const MAX_RATIO: f64 = 10.0;

/// How to run the benchmark.
#[derive(Debug, Clone)]
struct Config {
    /// The `ds` executable (any executable works: it is given `<subcommand...> -C <dir>`).
    ds: PathBuf,
    /// The subcommand and its arguments, e.g. `["validate"]` or `["plan", "--refresh=false"]`.
    subcommand: Vec<String>,
    /// Measured runs per size (a warm-up run comes first).
    runs: usize,
    /// Pin the child to this CPU with `taskset`.
    cpu: Option<usize>,
    /// Where the models are generated.
    models_dir: PathBuf,
    /// Write the state of an applied model before timing (`--seed-state`).
    seed_state: bool,
    /// The bar for the largest model's median, in ms (`--max-ms`).
    max_ms: f64,
    /// The bar for the peak RSS, in MiB (`--max-rss-mib`).
    max_rss_mib: f64,
}

/// The measurements of one run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
}

/// The result of one size.
#[derive(Debug, Clone)]
struct SizeResult {
    size: Size,
    model: Summary,
    samples: Vec<Sample>,
}

impl SizeResult {
    fn wall_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.wall.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn median_ms(&self) -> f64 {
        median(&self.wall_ms())
    }

    fn peak_rss_mib(&self) -> f64 {
        let kib = self
            .samples
            .iter()
            .map(|s| s.max_rss_kib)
            .max()
            .unwrap_or(0);
        kib as f64 / 1024.0
    }
}

/// `cargo xtask bench-validate ...`
pub(crate) fn cli(args: &[String]) -> Result<(), String> {
    let flags = Flags::parse(
        args,
        &["ds", "runs", "subcommand", "cpu", "max-ms", "max-rss-mib"],
        &["no-pin", "seed-state"],
    )?;
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"));
    let ds = match flags.get("ds") {
        Some(path) => PathBuf::from(path),
        None => {
            build_cli(&root)?;
            target.join("release").join("ds")
        }
    };
    let subcommand: Vec<String> = flags
        .get("subcommand")
        .unwrap_or("validate")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let runs = flags.parsed("runs")?.unwrap_or(5);
    if runs == 0 {
        return Err("`--runs` must be at least 1".into());
    }
    let cpu = if flags.has("no-pin") {
        if flags.get("cpu").is_some() {
            return Err("`--cpu` and `--no-pin` exclude each other".into());
        }
        None
    } else {
        Some(flags.parsed("cpu")?.unwrap_or(0))
    };
    let config = Config {
        ds,
        subcommand,
        runs,
        cpu,
        models_dir: target.join("bench-models"),
        seed_state: flags.has("seed-state"),
        max_ms: flags
            .parsed("max-ms")?
            .map_or(MAX_MEDIAN_MS, |v: u64| v as f64),
        max_rss_mib: flags
            .parsed("max-rss-mib")?
            .map_or(MAX_RSS_MIB, |v: u64| v as f64),
    };
    run(&config)
}

/// The workspace root: xtask lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo build --release -p cli` (a no-op when up to date).
fn build_cli(root: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench-validate: cargo build --release -p cli");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "cli"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo build --release -p cli` failed: {status}"))
    }
}

fn run(config: &Config) -> Result<(), String> {
    let program = config.ds.to_string_lossy().into_owned();
    let shown = std::iter::once(program.as_str())
        .chain(config.subcommand.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let pin = match config.cpu {
        Some(cpu) if taskset_available() => Some(cpu),
        Some(_) => {
            eprintln!("bench-validate: warning: `taskset` not found; runs are not pinned to a CPU");
            None
        }
        None => None,
    };
    let mut results = Vec::new();
    for size in SIZES {
        let dir = config.models_dir.join(size.label);
        let model = generate(&dir, size)?;
        if config.seed_state {
            seed_state(&dir)?;
        }
        let argv = command_line(config, pin, &dir);
        eprintln!(
            "bench-validate: {}: {} datasets, {} files, {} bytes; 1 + {} runs of `{shown} -C {}`",
            size.label,
            model.datasets,
            model.files,
            model.bytes,
            config.runs,
            dir.display()
        );
        run_sample(&argv)?; // warm-up
        let samples = (0..config.runs)
            .map(|_| run_sample(&argv))
            .collect::<Result<Vec<_>, _>>()?;
        results.push(SizeResult {
            size,
            model,
            samples,
        });
    }
    println!("{}", report(&shown, config.runs, pin, &results));
    if let Some(kib) = own_peak_rss_kib() {
        println!(
            "note: a child's `ru_maxrss` also counts the xtask address space it is spawned from (xtask's \
             peak RSS: {:.1} MiB): values at that level are a floor, not the child's own.\n",
            kib as f64 / 1024.0
        );
    }
    let checks = checks(&results, config.max_ms, config.max_rss_mib);
    let mut failed = false;
    for check in &checks {
        println!("{check}");
        failed |= !check.pass;
    }
    if failed {
        Err("a performance bar failed".into())
    } else {
        Ok(())
    }
}

/// Writes the state an apply of the model in `dir` would leave (`<dir>/.ds/state.json`), with the `tests`
/// package's `seed_state` example, so that a plan has nothing to do.
fn seed_state(dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "tests",
            "--example",
            "seed_state",
            "--",
        ])
        .arg(dir)
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "seeding the state of {} failed: {status}",
            dir.display()
        ))
    }
}

/// Generates the model of `size` into `dir` by running `xtask gen-model` as a child process.
///
/// Not in-process on purpose: a spawned child starts in (vfork) or as a copy of (fork) this process's
/// address space, and Linux carries that address space's peak RSS into the child's `ru_maxrss`. Keeping
/// the multi-megabyte model text out of this process keeps that floor at a few MiB.
fn generate(dir: &Path, size: Size) -> Result<Summary, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the xtask executable: {e}"))?;
    let output = Command::new(&exe)
        .arg("gen-model")
        .arg("--out")
        .arg(dir)
        .args(["--stores", &size.stores.to_string()])
        .args(["--datasets-per-store", &size.datasets_per_store.to_string()])
        .args(["--workspaces", &size.workspaces.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !output.status.success() {
        return Err(format!(
            "generating the {} model failed ({}):\n{}",
            size.label,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    let (mut files, mut bytes) = (0, 0);
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        if entry.file_name().to_string_lossy().ends_with(".ds.hcl") {
            files += 1;
            bytes += entry
                .metadata()
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?
                .len();
        }
    }
    Ok(Summary {
        files,
        stores: size.stores,
        datasets: size.stores * size.datasets_per_store,
        workspaces: size.workspaces,
        bytes,
    })
}

/// This process's own peak RSS in KiB (`VmHWM` of `/proc/self/status`), if readable.
fn own_peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `[taskset -c CPU] <ds> <subcommand...> -C <dir>`
fn command_line(config: &Config, pin: Option<usize>, dir: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(cpu) = pin {
        argv.push("taskset".into());
        argv.push("-c".into());
        argv.push(cpu.to_string().into());
    }
    argv.push(config.ds.clone().into());
    // `{dir}` in the subcommand stands for the model directory (`--state {dir}/.ds/none.json`).
    argv.extend(
        config
            .subcommand
            .iter()
            .map(|arg| OsString::from(arg.replace("{dir}", &dir.to_string_lossy()))),
    );
    argv.push("-C".into());
    argv.push(dir.into());
    argv
}

/// Runs `argv` once; an error (with the child's output) when it cannot start or exits unsuccessfully.
fn run_sample(argv: &[OsString]) -> Result<Sample, String> {
    let shown = || {
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (program, args) = argv.split_first().ok_or("empty command line")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", shown()))?;
    // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error only loses diagnostics; the exit status still decides.
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let reaped =
        rusage::wait_with_rusage(&child).map_err(|e| format!("wait4 on `{}`: {e}", shown()))?;
    let wall = started.elapsed();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !reaped.status.success() {
        return Err(format!(
            "`{}` failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            shown(),
            reaped.status,
            String::from_utf8_lossy(&stdout).trim_end(),
            String::from_utf8_lossy(&stderr).trim_end()
        ));
    }
    Ok(Sample {
        wall,
        max_rss_kib: reaped.max_rss_kib,
    })
}

/// The median of sorted values (mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Median of the largest size over median of the smallest.
fn ratio(results: &[SizeResult]) -> Option<f64> {
    let (first, last) = (results.first()?, results.last()?);
    Some(last.median_ms() / first.median_ms())
}

fn report(shown: &str, runs: usize, pin: Option<usize>, results: &[SizeResult]) -> String {
    let mut out = String::new();
    let pinned = pin.map_or_else(
        || "not pinned".to_string(),
        |cpu| format!("taskset -c {cpu}"),
    );
    out.push_str(&format!(
        "\n`{shown} -C <model>`: {runs} runs per size after one warm-up, {pinned}\n\n"
    ));
    out.push_str(
        "| size | datasets | stores | workspaces | files | model bytes | median ms | min ms | max ms | peak RSS MiB |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let ms = r.wall_ms();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.size.label,
            r.model.datasets,
            r.model.stores,
            r.model.workspaces,
            r.model.files,
            r.model.bytes,
            median(&ms),
            ms.first().copied().unwrap_or(f64::NAN),
            ms.last().copied().unwrap_or(f64::NAN),
            r.peak_rss_mib()
        ));
    }
    if let (Some(ratio), Some(first), Some(last)) =
        (ratio(results), results.first(), results.last())
    {
        out.push_str(&format!(
            "\nmedian {} / median {}: {ratio:.2}x (datasets {:.0}x)\n",
            last.size.label,
            first.size.label,
            last.model.datasets as f64 / first.model.datasets as f64
        ));
    }
    out
}

/// One pass/fail bar.
#[derive(Debug, Clone)]
struct Check {
    what: String,
    actual: String,
    pass: bool,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        write!(f, "{verdict}: {} ({})", self.what, self.actual)
    }
}

fn checks(results: &[SizeResult], max_ms: f64, max_rss_mib: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(last) = results.last() {
        let median = last.median_ms();
        checks.push(Check {
            what: format!("{} median < {max_ms:.0} ms", last.size.label),
            actual: format!("{median:.1} ms"),
            pass: median < max_ms,
        });
    }
    let peak = results
        .iter()
        .map(SizeResult::peak_rss_mib)
        .fold(0.0, f64::max);
    checks.push(Check {
        what: format!("peak RSS < {max_rss_mib:.0} MiB"),
        actual: format!("{peak:.1} MiB"),
        pass: peak < max_rss_mib,
    });
    if let (Some(ratio), Some(first), Some(last)) =
        (ratio(results), results.first(), results.last())
    {
        checks.push(Check {
            what: format!(
                "linearity: median {} <= {MAX_RATIO:.0}x median {}",
                last.size.label, first.size.label
            ),
            actual: format!("{ratio:.2}x"),
            pass: ratio <= MAX_RATIO,
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(label: &'static str, datasets: usize, ms: &[u64], rss_kib: u64) -> SizeResult {
        SizeResult {
            size: Size {
                label,
                stores: datasets / 10,
                datasets_per_store: 10,
                workspaces: 1,
            },
            model: Summary {
                files: 2,
                stores: datasets / 10,
                datasets,
                workspaces: 1,
                bytes: 100,
            },
            samples: ms
                .iter()
                .map(|&m| Sample {
                    wall: Duration::from_millis(m),
                    max_rss_kib: rss_kib,
                })
                .collect(),
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn bars() {
        let good = [
            result("1k", 1000, &[30, 10, 20], 10 * 1024),
            result("10k", 10000, &[150, 100, 120], 50 * 1024),
        ];
        let checks = checks(&good, MAX_MEDIAN_MS, MAX_RSS_MIB);
        assert_eq!(checks.len(), 3);
        assert!(checks.iter().all(|c| c.pass), "{checks:?}");
        let report = report("ds validate", 3, Some(0), &good);
        assert!(report.contains("| 10k | 10000 |"), "{report}");
        assert!(report.contains("6.00x"), "{report}");

        let slow = [
            result("1k", 1000, &[10], 1024),
            result("10k", 10000, &[1500], 400 * 1024),
        ];
        assert!(checks_fail_all(&slow));
    }

    fn checks_fail_all(results: &[SizeResult]) -> bool {
        checks(results, MAX_MEDIAN_MS, MAX_RSS_MIB)
            .iter()
            .all(|c| !c.pass)
    }

    #[test]
    fn runs_any_executable() {
        let ok = run_sample(&["true".into(), "validate".into(), "-C".into(), ".".into()]).unwrap();
        assert!(ok.max_rss_kib > 0);
        let err =
            run_sample(&["sh".into(), "-c".into(), "echo boom >&2; exit 2".into()]).unwrap_err();
        assert!(err.contains("boom"), "{err}");
        assert!(run_sample(&["/nonexistent/ds".into()]).is_err());
    }
}
