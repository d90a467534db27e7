//! Rendering diagnostics: text with source snippets (miette), and JSON.

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use planner::diag::{Diagnostic, Diagnostics, Severity};
use planner::source::Sources;
use serde::Serialize;

/// A source file as miette sees it, borrowed rather than copied.
struct FileSource<'a> {
    name: &'a str,
    text: &'a str,
}

impl SourceCode for FileSource<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// One planner diagnostic, adapted to miette's protocol.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: FileSource<'a>,
    /// Labels in the same file as the primary span.
    labels: Vec<LabeledSpan>,
    /// Help, plus notes for labels in other files.
    help: Option<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}",
            self.diagnostic.severity.as_str(),
            self.diagnostic.code,
            self.diagnostic.message
        )
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

fn span_of(range: &std::ops::Range<usize>) -> SourceSpan {
    SourceSpan::from((range.start, range.end.saturating_sub(range.start)))
}

/// Renders every diagnostic as text with its source snippet, for a terminal or a log.
pub(crate) fn text(sources: &Sources, diagnostics: &Diagnostics, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(110)
        .with_links(false);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let file = sources.get(diagnostic.span.file);
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            None,
            span_of(&diagnostic.span.range),
        )];
        let mut notes = Vec::new();
        for label in &diagnostic.labels {
            if label.span.file == diagnostic.span.file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.message.clone()),
                    span_of(&label.span.range),
                ));
            } else {
                let other = sources.get(label.span.file);
                let (line, column) = other.line_col(label.span.range.start);
                notes.push(format!(
                    "{} at {}:{line}:{column}",
                    label.message, other.name
                ));
            }
        }
        let help = match (&diagnostic.help, notes.is_empty()) {
            (help, true) => help.clone(),
            (help, false) => {
                let notes = notes.join("; ");
                Some(match help {
                    Some(help) => format!("{help}\n(see: {notes})"),
                    None => format!("see: {notes}"),
                })
            }
        };
        let report = Report {
            diagnostic,
            source: FileSource {
                name: &file.name,
                text: &file.text,
            },
            labels,
            help,
        };
        // Writing to a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: &'static str,
    code: &'static str,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<JsonLabel<'a>>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

/// Renders the diagnostics as one JSON document.
pub(crate) fn json(sources: &Sources, diagnostics: &Diagnostics) -> String {
    let items = diagnostics
        .iter()
        .map(|d| {
            let file = sources.get(d.span.file);
            let (line, column) = file.line_col(d.span.range.start);
            let (end_line, end_column) = file.line_col(d.span.range.end);
            JsonDiagnostic {
                severity: d.severity.as_str(),
                code: d.code,
                message: &d.message,
                file: &file.name,
                line,
                column,
                end_line,
                end_column,
                help: d.help.as_deref(),
                labels: d
                    .labels
                    .iter()
                    .map(|label| {
                        let file = sources.get(label.span.file);
                        let (line, column) = file.line_col(label.span.range.start);
                        JsonLabel {
                            message: &label.message,
                            file: &file.name,
                            line,
                            column,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let report = JsonReport {
        valid: !diagnostics.has_errors(),
        errors: diagnostics.count(Severity::Error),
        warnings: diagnostics.count(Severity::Warning),
        diagnostics: items,
    };
    serde_json::to_string_pretty(&report).expect("a report always serialises") + "\n"
}
