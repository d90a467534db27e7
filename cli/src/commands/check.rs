//! `ds check`: judges the change from a base revision to a head (a revision, or the working tree) the way a
//! pull request is judged, and `ds plan --base` puts the same verdict above its plan.

use std::path::Path;

use anyhow::{Context, bail};
use planner::check::{Actor, Side, Verdict};
use planner::codes;
use planner::diag::{Diagnostics, Severity, Span};
use planner::model::Model;
use planner::source::Sources;
use serde_json::json;

use crate::{EXIT_OK, write_stdout};

/// Exit code: the change is refused (ownership, compatibility or consumers).
pub(crate) const EXIT_REFUSED: u8 = 3;

/// Output formats of `ds check`.
#[derive(Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum CheckFormat {
    /// For people
    #[default]
    Text,
    /// For a pull-request comment
    Markdown,
    /// For programs
    Json,
}

/// Which change to judge, and whose it is.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct ChangeArgs {
    /// The revision the change starts from (the pull request's base: a SHA, branch or tag)
    #[arg(long, value_name = "REV")]
    pub(crate) base: Option<String>,
    /// The revision the change ends at (default: the working tree)
    #[arg(long, value_name = "REV", requires = "base")]
    pub(crate) head: Option<String>,
    /// Who makes the change: `owner/name@branch` (default: the pull request's head repository and branch in
    /// GitHub Actions)
    #[arg(long, value_name = "REPO@BRANCH", requires = "base")]
    pub(crate) actor: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) change: ChangeArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: CheckFormat,
}

/// A judged change: both models and the verdict.
pub(crate) struct Judged {
    pub(crate) base_rev: String,
    /// The head revision, or `None` for the working tree.
    pub(crate) head_rev: Option<String>,
    pub(crate) actor: Option<Actor>,
    pub(crate) base: Sources,
    pub(crate) head: Sources,
    pub(crate) head_model: Model,
    pub(crate) verdict: Verdict,
}

/// The actor: `--actor`, else GitHub Actions' pull request head (repository and branch), else none
/// (ownership is then not judged; under `CI` that is an error).
fn actor(given: Option<&str>) -> anyhow::Result<Option<Actor>> {
    if let Some(text) = given {
        return Actor::parse(text).map(Some).map_err(anyhow::Error::msg);
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(path) = var("GITHUB_EVENT_PATH")
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(event) = serde_json::from_str::<serde_json::Value>(&text)
        && let (Some(repo), Some(branch)) = (
            event
                .pointer("/pull_request/head/repo/full_name")
                .and_then(|v| v.as_str()),
            event
                .pointer("/pull_request/head/ref")
                .and_then(|v| v.as_str()),
        )
    {
        return Actor::parse(&format!("{repo}@{branch}"))
            .map(Some)
            .map_err(anyhow::Error::msg);
    }
    if let (Some(repo), Some(branch)) = (
        var("GITHUB_REPOSITORY"),
        var("GITHUB_HEAD_REF").or_else(|| var("GITHUB_REF_NAME")),
    ) {
        return Actor::parse(&format!("{repo}@{branch}"))
            .map(Some)
            .map_err(anyhow::Error::msg);
    }
    if var("CI").is_some() {
        bail!(
            "who makes this change is unknown: pass --actor owner/name@branch (in GitHub Actions it is read from \
             the pull request)"
        );
    }
    Ok(None)
}

/// Reads both models, validates them and judges the change. An invalid model (other than sinks left
/// pointing at what the change removed, which the verdict reports) is an error.
pub(crate) fn judge(dir: &Path, change: &ChangeArgs) -> anyhow::Result<Judged> {
    let Some(base_rev) = change.base.clone() else {
        bail!("--base REV is needed: the revision the change starts from");
    };
    let actor = actor(change.actor.as_deref())?;
    let base = planner::source::read_git(dir, &base_rev)?;
    let head = match &change.head {
        Some(rev) => planner::source::read_git(dir, rev)?,
        None => planner::source::read_dir(dir)?,
    };
    let (base_model, base_found) = planner::check(&base);
    if base_found.has_errors() {
        bail!(
            "the base model (at {base_rev}) has {} error(s), the first {}: a change can only be judged against a \
             valid base",
            base_found.count(Severity::Error),
            first_error(&base, &base_found)
        );
    }
    let (head_model, head_found) = planner::check(&head);
    let verdict = planner::check::judge(&base_model, &head_model, actor.as_ref());
    // Sinks left pointing at a removed dataset are the verdict's to report (as refused), not errors.
    let consumer_lines: Vec<(u32, usize)> = verdict
        .findings
        .iter()
        .filter(|f| f.rule == planner::check::Rule::Consumers)
        .map(|f| line_of(&head, &f.span))
        .collect();
    let mut errors = Diagnostics::default();
    for d in head_found.iter() {
        let explained = (d.code == codes::UNKNOWN_STORE.code
            || d.code == codes::UNKNOWN_DATASET.code)
            && consumer_lines.contains(&line_of(&head, &d.span));
        if !explained && d.severity == Severity::Error {
            errors.push(d.clone());
        }
    }
    if errors.has_errors() {
        bail!(
            "the proposed model ({}) has {} error(s), the first {}: run `ds validate` for the full report",
            change.head.as_deref().unwrap_or("the working tree"),
            errors.count(Severity::Error),
            first_error(&head, &errors)
        );
    }
    Ok(Judged {
        base_rev,
        head_rev: change.head.clone(),
        actor,
        base,
        head,
        head_model,
        verdict,
    })
}

/// The first error, on one line: `at file:line:col: message [code]`.
fn first_error(sources: &Sources, found: &Diagnostics) -> String {
    let Some(d) = found.iter().find(|d| d.severity == Severity::Error) else {
        return String::new();
    };
    let file = sources.get(d.span.file);
    let (line, column) = file.line_col(d.span.range.start);
    format!(
        "at {}:{line}:{column}: {} [{}]",
        file.name, d.message, d.code
    )
}

/// (file, line) of a span.
fn line_of(sources: &Sources, span: &Span) -> (u32, usize) {
    (
        span.file.0,
        sources.get(span.file).line_col(span.range.start).0,
    )
}

impl Judged {
    /// `file:line` of a place, in the head or the base.
    fn place(&self, side: Side, span: &Span) -> String {
        let sources = match side {
            Side::Head => &self.head,
            Side::Base => &self.base,
        };
        let file = sources.get(span.file);
        let (line, _) = file.line_col(span.range.start);
        match side {
            Side::Head => format!("{}:{line}", file.name),
            Side::Base => format!("{}:{line} (base)", file.name),
        }
    }

    fn head_name(&self) -> String {
        self.head_rev
            .clone()
            .unwrap_or_else(|| "the working tree".to_string())
    }

    fn by(&self) -> String {
        match &self.actor {
            Some(actor) => format!("by {actor}"),
            None => {
                "author unknown: ownership not judged (pass --actor owner/name@branch)".to_string()
            }
        }
    }

    /// The verdict for people.
    pub(crate) fn text(&self) -> String {
        let v = &self.verdict;
        let mut out = format!(
            "Change from {} to {}, {}.\n",
            self.base_rev,
            self.head_name(),
            self.by()
        );
        if v.changed.is_empty() {
            out.push_str("No ownership region changed.\n");
        } else {
            out.push_str("Changed regions:\n");
            for c in &v.changed {
                let sign = match c.how {
                    "added" => '+',
                    "removed" => '-',
                    _ => '~',
                };
                out.push_str(&format!(
                    "  {sign} {} ({}, owned by {})\n",
                    c.region,
                    self.place(c.side, &c.span),
                    c.owner.as_deref().unwrap_or("nobody declared")
                ));
            }
        }
        if v.allowed() {
            out.push_str(
                "Allowed: every changed region is the author's, and nothing a consumer relies on breaks.\n",
            );
            return out;
        }
        out.push_str(&format!(
            "Refused: {} problem{}.\n",
            v.findings.len(),
            if v.findings.len() == 1 { "" } else { "s" }
        ));
        for f in &v.findings {
            out.push_str(&format!(
                "  ✗ {}: {}\n      at {}, in {} (owned by {})\n      to fix: {}\n",
                f.rule.as_str(),
                f.message,
                self.place(f.side, &f.span),
                f.region,
                f.owner.as_deref().unwrap_or("nobody declared"),
                f.fix
            ));
        }
        out
    }

    /// The verdict as the top of a pull-request comment.
    pub(crate) fn markdown(&self) -> String {
        let v = &self.verdict;
        let mut out = if v.allowed() {
            "### ✅ ds check: allowed\n\n".to_string()
        } else {
            format!(
                "### ⛔ ds check: refused ({} problem{})\n\n",
                v.findings.len(),
                if v.findings.len() == 1 { "" } else { "s" }
            )
        };
        out.push_str(&format!(
            "From `{}` to `{}`, {}.\n\n",
            self.base_rev,
            self.head_name(),
            match &self.actor {
                Some(actor) => format!("by `{actor}`"),
                None => "author unknown: ownership not judged".to_string(),
            }
        ));
        if !v.findings.is_empty() {
            out.push_str("| rule | problem | where | owner | to fix |\n|---|---|---|---|---|\n");
            for f in &v.findings {
                out.push_str(&format!(
                    "| {} | {} | `{}` | {} | {} |\n",
                    f.rule.as_str(),
                    cell(&f.message),
                    self.place(f.side, &f.span),
                    f.owner
                        .as_deref()
                        .map_or("nobody declared".to_string(), |o| format!("`{o}`")),
                    cell(&f.fix)
                ));
            }
            out.push('\n');
        }
        if !v.changed.is_empty() {
            out.push_str("Changed regions: ");
            let list: Vec<String> = v
                .changed
                .iter()
                .map(|c| {
                    format!(
                        "`{}` ({}, owner `{}`)",
                        c.region,
                        c.how,
                        c.owner.as_deref().unwrap_or("none")
                    )
                })
                .collect();
            out.push_str(&list.join(", "));
            out.push_str(".\n");
        }
        out
    }

    /// The verdict for programs.
    pub(crate) fn json(&self) -> serde_json::Value {
        let v = &self.verdict;
        json!({
            "verdict": if v.allowed() { "allowed" } else { "refused" },
            "base": self.base_rev,
            "head": self.head_rev,
            "actor": self.actor.as_ref().map(|a| a.to_string()),
            "ownership_judged": v.ownership_judged,
            "changed_regions": v.changed.iter().map(|c| json!({
                "region": c.region,
                "change": c.how,
                "owner": c.owner,
                "at": self.place(c.side, &c.span),
            })).collect::<Vec<_>>(),
            "findings": v.findings.iter().map(|f| json!({
                "rule": f.rule.as_str(),
                "object": f.object,
                "region": f.region,
                "owner": f.owner,
                "message": f.message,
                "fix": f.fix,
                "at": self.place(f.side, &f.span),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Text for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn run(dir: &Path, args: &CheckArgs) -> anyhow::Result<u8> {
    let judged = judge(dir, &args.change)?;
    let out = match args.format {
        CheckFormat::Text => judged.text(),
        CheckFormat::Markdown => judged.markdown(),
        CheckFormat::Json => {
            serde_json::to_string_pretty(&judged.json()).context("rendering the verdict")? + "\n"
        }
    };
    write_stdout(&out)?;
    let allowed = judged.verdict.allowed();
    // Freeing two large models is work the process exit does for free.
    std::mem::forget(judged);
    Ok(if allowed { EXIT_OK } else { EXIT_REFUSED })
}
