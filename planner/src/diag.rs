//! Diagnostics: problems in the user's model, as plain data.
//!
//! A problem in a model file is never an `Err`: the loader and the validator return the model *and* every
//! diagnostic they found, so that one run reports everything. Rendering (snippets, colours, JSON) is the
//! `cli`'s business; this module only carries what, where and what to do.

use std::ops::Range;

use crate::source::FileId;

/// How bad a problem is. A model with only warnings is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The model is invalid; nothing may be planned from it.
    Error,
    /// Worth a look, but the model is valid.
    Warning,
}

impl Severity {
    /// The lowercase word used in reports: `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A byte range in one source file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// Zero-based byte offsets, end exclusive.
    pub range: Range<usize>,
}

thread_local! {
    /// Set while `check` takes a fingerprint of model objects: spans then print as nothing, since places
    /// differ between two revisions where the content does not.
    pub(crate) static SPANS_HIDDEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if SPANS_HIDDEN.with(|hidden| hidden.get()) {
            return f.write_str("_");
        }
        f.debug_struct("Span")
            .field("file", &self.file)
            .field("range", &self.range)
            .finish()
    }
}

impl Span {
    /// A span of `range` in `file`.
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span { file, range }
    }
}

/// A secondary location that helps explain a diagnostic ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there, as a short phrase.
    pub message: String,
}

/// One problem found in a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code, see [`crate::codes`].
    pub code: &'static str,
    /// What is wrong, naming the objects involved. A lowercase phrase without a trailing period.
    pub message: String,
    /// The offending construct.
    pub span: Span,
    /// Other places that explain the problem.
    pub labels: Vec<Label>,
    /// What to do about it, when there is something useful to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic whose severity is the code's default severity.
    pub fn new(code: &crate::codes::Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: code.severity,
            code: code.code,
            message: message.into(),
            span,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Overrides the code's default severity (for rules that are an error or a warning by situation).
    pub fn with_severity(mut self, severity: Severity) -> Diagnostic {
        self.severity = severity;
        self
    }
}

/// Every diagnostic of one run, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The number of diagnostics of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// All diagnostics, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Sorts by file, position, then code, so that reports are stable whatever the order of discovery.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (a.span.file, a.span.range.start, a.code, &a.message).cmp(&(
                b.span.file,
                b.span.range.start,
                b.code,
                &b.message,
            ))
        });
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
