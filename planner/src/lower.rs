//! Lowering: HCL syntax trees (from `hcl-edit`, with byte spans) into the typed [`Model`].
//!
//! Every block and attribute of the language is known here; anything else is reported with a "did you
//! mean". A value that does not lower is reported and left out, and lowering goes on, so that one run shows
//! every problem. This module checks the *shape* of the model (rule 1, and the syntax of values that have
//! one: types, triggers, classifications); relations between objects are [`crate::validate`]'s job.

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, Object, ObjectKey};
use hcl_edit::structure::{Attribute, Block, BlockLabel, Body, Structure};
use hcl_edit::template::{Element, Template};

use crate::codes::{self, Code};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::model::*;
use crate::names::did_you_mean;
use crate::source::{FileId, Sources};
use crate::trigger;
use crate::types::{ColumnType, TYPE_NAMES, TypeError};

/// Lowers every file into one model, collecting every problem.
pub fn lower(sources: &Sources) -> (Model, Diagnostics) {
    let mut model = Model::default();
    let mut diags = Diagnostics::default();
    for (file, source) in sources.iter() {
        let Some((body, duplicates)) = parse(file, &source.text, &mut diags) else {
            continue;
        };
        let mut cx = Cx {
            file,
            text: &source.text,
            duplicates,
            diags: &mut diags,
        };
        cx.top_level(&body, &mut model);
        cx.leftover_duplicates();
    }
    (model, diags)
}

/// Only the syntax errors of every file (what `ds fmt` needs to know before it touches a file).
pub fn syntax_errors(sources: &Sources) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (file, source) in sources.iter() {
        parse(file, &source.text, &mut diags);
    }
    diags
}

/// A key written twice in one body or object. `hcl-edit` refuses the file; we rename the second key to a
/// placeholder of the same length (so every span stays right), parse again, and report it as a model
/// problem, so that one repeated key does not hide every other problem of the file.
struct Duplicate {
    key: String,
    range: std::ops::Range<usize>,
    first: Option<std::ops::Range<usize>>,
    reported: bool,
}

fn parse(file: FileId, text: &str, diags: &mut Diagnostics) -> Option<(Body, Vec<Duplicate>)> {
    let mut patched: Option<String> = None;
    let mut duplicates: Vec<Duplicate> = Vec::new();
    loop {
        let current = patched.as_deref().unwrap_or(text);
        let err = match hcl_edit::parser::parse_body(current) {
            Ok(body) => return Some((body, duplicates)),
            Err(err) => err,
        };
        let offset = err.location().offset().min(text.len());
        if err.message().contains("redefined")
            && let Some(range) = key_at(current, offset)
            && let Some(placeholder) = placeholder(range.len(), duplicates.len())
        {
            let key = text[range.clone()].trim_matches('"').to_string();
            let first = previous_key(text, &key, range.start);
            let mut next = current.to_string();
            next.replace_range(range.clone(), &placeholder);
            patched = Some(next);
            duplicates.push(Duplicate {
                key,
                range,
                first,
                reported: false,
            });
            continue;
        }
        let end = text[offset..]
            .chars()
            .next()
            .map_or(offset, |c| offset + c.len_utf8());
        diags.push(
            Diagnostic::new(
                &codes::SYNTAX,
                Span::new(file, offset..end),
                format!("invalid HCL: {}", err.message()),
            )
            .with_help("fix the syntax first: checks that need this file were skipped"),
        );
        return None;
    }
}

/// The identifier or quoted string that starts at `offset`.
fn key_at(text: &str, offset: usize) -> Option<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut end = offset;
    if bytes.get(offset) == Some(&b'"') {
        end += 1;
        while end < bytes.len() && bytes[end] != b'"' && bytes[end] != b'\n' {
            end += 1;
        }
        return (bytes.get(end) == Some(&b'"')).then_some(offset..end + 1);
    }
    while end < bytes.len()
        && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'_' | b'-'))
    {
        end += 1;
    }
    (end > offset).then_some(offset..end)
}

/// An identifier of exactly `len` bytes, unique per `index`, that no model uses.
fn placeholder(len: usize, index: usize) -> Option<String> {
    let digits = index.to_string();
    (len > digits.len() + 1).then(|| format!("Z{}{digits}", "Z".repeat(len - 1 - digits.len())))
}

/// Where `key` was last written as a key (`key =`) before `before`.
fn previous_key(text: &str, key: &str, before: usize) -> Option<std::ops::Range<usize>> {
    let mut search = &text[..before];
    while let Some(at) = search.rfind(key) {
        let preceded_ok = at == 0
            || !text.as_bytes()[at - 1].is_ascii_alphanumeric() && text.as_bytes()[at - 1] != b'_';
        let rest = text[at + key.len()..].trim_start_matches([' ', '\t', '"']);
        if preceded_ok && rest.starts_with('=') && !rest.starts_with("==") {
            return Some(at..at + key.len());
        }
        search = &text[..at];
    }
    None
}

struct Cx<'a> {
    file: FileId,
    text: &'a str,
    duplicates: Vec<Duplicate>,
    diags: &'a mut Diagnostics,
}

/// The known attributes and blocks of one body, after unknown and duplicate ones were reported.
struct Fields<'b> {
    what: String,
    owner: Span,
    attrs: Vec<&'b Attribute>,
    blocks: Vec<&'b Block>,
}

impl<'b> Fields<'b> {
    fn attr(&self, name: &str) -> Option<&'b Attribute> {
        self.attrs
            .iter()
            .copied()
            .find(|a| a.key.value().as_str() == name)
    }

    fn blocks<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b Block> + 's {
        self.blocks
            .iter()
            .copied()
            .filter(move |b| b.ident.value().as_str() == name)
    }
}

/// A literal value, or why the expression is not one.
enum Lit<'e> {
    Str(String),
    Num(&'e hcl_edit::Number),
    Bool(bool),
    Null,
    Array(&'e hcl_edit::expr::Array),
    Object(&'e Object),
    NotLiteral(&'static str),
}

fn literal(expr: &Expression) -> Lit<'_> {
    match expr {
        Expression::String(s) => Lit::Str(s.value().clone()),
        Expression::Number(n) => Lit::Num(n.value()),
        Expression::Bool(b) => Lit::Bool(*b.value()),
        Expression::Null(_) => Lit::Null,
        Expression::Array(a) => Lit::Array(a),
        Expression::Object(o) => Lit::Object(o),
        Expression::StringTemplate(t) => template_text(t).map_or(
            Lit::NotLiteral("a string with `${...}` or `%{...}` (templates are not evaluated)"),
            Lit::Str,
        ),
        Expression::HeredocTemplate(h) => template_text(&h.template).map_or(
            Lit::NotLiteral("a heredoc with `${...}` or `%{...}` (templates are not evaluated)"),
            Lit::Str,
        ),
        Expression::Parenthesis(_) => Lit::NotLiteral("a parenthesised expression"),
        Expression::Variable(_) => {
            Lit::NotLiteral("a variable (references are plain strings: put the name in quotes)")
        }
        Expression::Conditional(_) => Lit::NotLiteral("a conditional expression"),
        Expression::FuncCall(_) => Lit::NotLiteral("a function call"),
        Expression::Traversal(_) => {
            Lit::NotLiteral("a reference (references are plain strings: put the name in quotes)")
        }
        Expression::UnaryOp(op) => match (op.operator.value(), &op.expr) {
            (hcl_edit::expr::UnaryOperator::Neg, Expression::Number(_)) => {
                Lit::NotLiteral("__negative_number")
            }
            _ => Lit::NotLiteral("an operator expression"),
        },
        Expression::BinaryOp(_) => Lit::NotLiteral("an operator expression"),
        Expression::ForExpr(_) => Lit::NotLiteral("a for expression"),
    }
}

fn template_text(template: &Template) -> Option<String> {
    let mut out = String::new();
    for element in template.iter() {
        match element {
            Element::Literal(s) => out.push_str(s.value()),
            _ => return None,
        }
    }
    Some(out)
}

fn lit_kind(lit: &Lit<'_>) -> &'static str {
    match lit {
        Lit::Str(_) => "a string",
        Lit::Num(_) => "a number",
        Lit::Bool(_) => "a bool",
        Lit::Null => "null",
        Lit::Array(_) => "a list",
        Lit::Object(_) => "an object",
        Lit::NotLiteral(_) => "an expression",
    }
}

fn key_text(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Ident(ident) => Some(ident.value().as_str().to_string()),
        ObjectKey::Expression(expr) => match literal(expr) {
            Lit::Str(s) => Some(s),
            _ => None,
        },
    }
}

fn label_text(label: &BlockLabel) -> &str {
    label.as_str()
}

fn block_kind(block: &Block) -> &str {
    block.ident.value().as_str()
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'a> Cx<'a> {
    fn span(&self, node: &impl hcl_edit::Span) -> Span {
        Span::new(self.file, node.span().unwrap_or(0..0))
    }

    /// The span of a block's identifier and labels: what diagnostics about the whole block underline.
    fn header(&self, block: &Block) -> Span {
        let start = block.ident.span().map_or(0, |r| r.start);
        let end = block
            .labels
            .last()
            .and_then(|l| l.span())
            .or_else(|| block.ident.span())
            .map_or(start, |r| r.end);
        Span::new(self.file, start..end)
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    fn error(&mut self, code: &Code, span: Span, message: String) {
        self.diags.push(Diagnostic::new(code, span, message));
    }

    /// Checks a body against its known attributes and blocks.
    fn fields<'b>(
        &mut self,
        body: &'b Body,
        what: String,
        owner: Span,
        attrs: &[&str],
        blocks: &[&str],
    ) -> Fields<'b> {
        let mut fields = Fields {
            what,
            owner,
            attrs: Vec::new(),
            blocks: Vec::new(),
        };
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.value().as_str();
                    let key_span = self.span(&attr.key);
                    if self.duplicate(&key_span, &fields.what, &codes::DUPLICATE_ATTRIBUTE) {
                        continue;
                    }
                    // A repeated attribute never gets here: the parser refuses it, and `parse` reports it
                    // as a `Duplicate` (see `duplicate` above).
                    if attrs.contains(&key) {
                        fields.attrs.push(attr);
                    } else if blocks.contains(&key) {
                        self.report(
                            Diagnostic::new(
                                &codes::UNKNOWN_ATTRIBUTE,
                                self.span(&attr.key),
                                format!("`{key}` is a block in {}, not an attribute", fields.what),
                            )
                            .with_help(format!("write it as a block: `{key} {{ ... }}`")),
                        );
                    } else {
                        self.unknown(
                            &codes::UNKNOWN_ATTRIBUTE,
                            "attribute",
                            key,
                            self.span(&attr.key),
                            &fields.what,
                            attrs,
                            blocks,
                        );
                    }
                }
                Structure::Block(block) => {
                    let kind = block_kind(block);
                    if blocks.contains(&kind) {
                        fields.blocks.push(block);
                    } else if attrs.contains(&kind) {
                        self.report(
                            Diagnostic::new(
                                &codes::UNKNOWN_BLOCK,
                                self.span(&block.ident),
                                format!("`{kind}` is an attribute in {}, not a block", fields.what),
                            )
                            .with_help(format!("write it as an attribute: `{kind} = ...`")),
                        );
                    } else {
                        self.unknown(
                            &codes::UNKNOWN_BLOCK,
                            "block",
                            kind,
                            self.span(&block.ident),
                            &fields.what,
                            blocks,
                            attrs,
                        );
                    }
                }
            }
        }
        fields
    }

    #[allow(clippy::too_many_arguments)]
    fn unknown(
        &mut self,
        code: &Code,
        noun: &str,
        name: &str,
        span: Span,
        what: &str,
        same_kind: &[&str],
        other_kind: &[&str],
    ) {
        let mut diagnostic =
            Diagnostic::new(code, span, format!("unknown {noun} `{name}` in {what}"));
        diagnostic = match did_you_mean(name, same_kind.iter().copied()) {
            Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
            None if same_kind.is_empty() && other_kind.is_empty() => {
                diagnostic.with_help(format!("{what} takes no attributes or blocks"))
            }
            None if same_kind.is_empty() => {
                diagnostic.with_help(format!("{what} takes no {noun}s"))
            }
            None => diagnostic.with_help(format!(
                "the {noun}s of {what} are {}",
                quoted_list(same_kind)
            )),
        };
        self.report(diagnostic);
    }

    /// Checks a block's label count; returns the labels as names.
    fn labels(&mut self, block: &Block, what: &str, expected: &[&str]) -> Option<Vec<Name>> {
        if block.labels.len() != expected.len() {
            let kind = block_kind(block);
            let shape: String = expected.iter().map(|l| format!(" \"<{l}>\"")).collect();
            let message = if expected.is_empty() {
                format!("{what} takes no labels, found {}", block.labels.len())
            } else {
                format!(
                    "{what} needs {} label{} ({}), found {}",
                    expected.len(),
                    if expected.len() == 1 { "" } else { "s" },
                    expected.join(", "),
                    block.labels.len()
                )
            };
            self.report(
                Diagnostic::new(&codes::WRONG_LABELS, self.header(block), message)
                    .with_help(format!("write `{kind}{shape} {{ ... }}`")),
            );
            return None;
        }
        Some(
            block
                .labels
                .iter()
                .map(|l| Spanned::new(label_text(l).to_string(), self.span(l)))
                .collect(),
        )
    }

    fn single_label(&mut self, block: &Block, what: &str, label: &str) -> Option<Name> {
        self.labels(block, what, &[label]).and_then(|mut v| v.pop())
    }

    /// At most one block of a kind; later ones are reported.
    fn single_block<'b>(&mut self, fields: &Fields<'b>, kind: &str) -> Option<&'b Block> {
        let mut found = fields.blocks(kind);
        let first = found.next()?;
        let first_span = self.header(first);
        let rest: Vec<_> = found.collect();
        for extra in rest {
            self.report(
                Diagnostic::new(
                    &codes::DUPLICATE_ATTRIBUTE,
                    self.header(extra),
                    format!("{} has more than one `{kind}` block", fields.what),
                )
                .with_label(first_span.clone(), "first one here")
                .with_help(format!("merge them into one `{kind}` block")),
            );
        }
        if !first.labels.is_empty() {
            self.labels(first, &format!("a `{kind}` block"), &[]);
        }
        Some(first)
    }

    fn missing(&mut self, fields: &Fields<'_>, name: &str, hint: &str) {
        self.report(
            Diagnostic::new(
                &codes::MISSING_ATTRIBUTE,
                fields.owner.clone(),
                format!("{} is missing `{name}`", fields.what),
            )
            .with_help(format!("add `{name}{hint}`")),
        );
    }

    // ---- values ----

    /// Reports a value of the wrong kind (or an expression), and returns `None`.
    fn wrong<T>(
        &mut self,
        expr: &Expression,
        lit: &Lit<'_>,
        what: &str,
        expected: &str,
    ) -> Option<T> {
        let span = self.span(expr);
        match lit {
            Lit::NotLiteral("__negative_number") => {
                self.error(
                    &codes::WRONG_TYPE,
                    span,
                    format!("{what} must be {expected}, not a negative number"),
                );
            }
            Lit::NotLiteral(kind) => self.report(
                Diagnostic::new(
                    &codes::EXPRESSION,
                    span,
                    format!("{what} is {kind}; only literal values are allowed"),
                )
                .with_help(format!("write {expected} literally")),
            ),
            other => self.error(
                &codes::WRONG_TYPE,
                span,
                format!("{what} must be {expected}, not {}", lit_kind(other)),
            ),
        }
        None
    }

    fn string(&mut self, expr: &Expression, what: &str) -> Option<Spanned<String>> {
        match literal(expr) {
            Lit::Str(s) => Some(Spanned::new(s, self.span(expr))),
            other => self.wrong(expr, &other, what, "a string"),
        }
    }

    fn bool(&mut self, expr: &Expression, what: &str) -> Option<bool> {
        match literal(expr) {
            Lit::Bool(b) => Some(b),
            other => self.wrong(expr, &other, what, "`true` or `false`"),
        }
    }

    fn int(&mut self, expr: &Expression, what: &str) -> Option<Spanned<i64>> {
        let lit = literal(expr);
        match &lit {
            Lit::Num(n) => match n.as_i64() {
                Some(i) => Some(Spanned::new(i, self.span(expr))),
                None => {
                    self.error(
                        &codes::WRONG_TYPE,
                        self.span(expr),
                        format!("{what} must be a whole number, not a fraction"),
                    );
                    None
                }
            },
            Lit::NotLiteral("__negative_number") => {
                let Expression::UnaryOp(op) = expr else {
                    unreachable!()
                };
                let Expression::Number(n) = &op.expr else {
                    unreachable!()
                };
                n.value()
                    .as_i64()
                    .map(|i| Spanned::new(-i, self.span(expr)))
            }
            other => self.wrong(expr, other, what, "a whole number"),
        }
    }

    fn port(&mut self, expr: &Expression, what: &str) -> Option<Spanned<u16>> {
        let n = self.int(expr, what)?;
        match u16::try_from(n.value) {
            Ok(port) if port > 0 => Some(Spanned::new(port, n.span)),
            _ => {
                self.error(
                    &codes::INVALID_VALUE,
                    n.span,
                    format!("{what} must be a TCP port (1 to 65535), not {}", n.value),
                );
                None
            }
        }
    }

    fn string_list(&mut self, expr: &Expression, what: &str) -> Option<Vec<Spanned<String>>> {
        match literal(expr) {
            Lit::Array(array) => Some(
                array
                    .iter()
                    .filter_map(|item| self.string(item, &format!("an item of {what}")))
                    .collect(),
            ),
            other => self.wrong(expr, &other, what, "a list of strings"),
        }
    }

    fn object<'e>(&mut self, expr: &'e Expression, what: &str) -> Option<&'e Object> {
        match literal(expr) {
            Lit::Object(object) => Some(object),
            other => self.wrong(expr, &other, what, "an object `{ ... }`"),
        }
    }

    /// An enumerated string value, with a suggestion when it is close to an allowed one.
    fn choice(
        &mut self,
        expr: &Expression,
        what: &str,
        allowed: &[&str],
    ) -> Option<Spanned<String>> {
        let value = self.string(expr, what)?;
        if allowed.contains(&value.value.as_str()) {
            return Some(value);
        }
        let exact_other_case = allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(&value.value));
        let help = match exact_other_case
            .copied()
            .or_else(|| did_you_mean(&value.value, allowed.iter().copied()))
        {
            Some(close) => format!("did you mean `\"{close}\"`?"),
            None => format!("use one of {}", quoted_list(allowed)),
        };
        self.report(
            Diagnostic::new(
                &codes::INVALID_VALUE,
                value.span,
                format!(
                    "{what} is `\"{}\"`, which is not one of {}",
                    value.value,
                    quoted_list(allowed)
                ),
            )
            .with_help(help),
        );
        None
    }

    /// The entries of an object literal, each key checked against `known` (when given) and for duplicates.
    fn entries<'e>(
        &mut self,
        object: &'e Object,
        what: &str,
        known: Option<&[&str]>,
    ) -> Vec<(Name, &'e Expression)> {
        let mut out = Vec::with_capacity(object.len());
        for (key, value) in object.iter() {
            let key_span = self.span(key);
            if self.duplicate(&key_span, what, &codes::DUPLICATE_ATTRIBUTE) {
                continue;
            }
            let Some(name) = key_text(key) else {
                self.report(
                    Diagnostic::new(
                        &codes::EXPRESSION,
                        key_span,
                        format!("a key of {what} is an expression; only names are allowed"),
                    )
                    .with_help("write the key as a plain name or a quoted string"),
                );
                continue;
            };
            if let Some(known) = known
                && !known.contains(&name.as_str())
            {
                self.unknown(
                    &codes::UNKNOWN_ATTRIBUTE,
                    "key",
                    &name,
                    key_span,
                    what,
                    known,
                    &[],
                );
                continue;
            }
            out.push((Spanned::new(name, key_span), value.expr()));
        }
        out
    }

    /// Whether the key at `span` is a repeated key (see [`Duplicate`]); reports it the first time.
    fn duplicate(&mut self, span: &Span, what: &str, code: &Code) -> bool {
        let Some(dup) = self
            .duplicates
            .iter_mut()
            .find(|d| d.range.start == span.range.start)
        else {
            return false;
        };
        if !dup.reported {
            dup.reported = true;
            let message = if code.code == codes::DUPLICATE_NAME.code {
                format!("column `{}` is defined twice in {what}", dup.key)
            } else {
                format!("`{}` is written twice in {what}", dup.key)
            };
            let mut d = Diagnostic::new(code, Span::new(self.file, dup.range.clone()), message)
                .with_help("remove or rename one of them");
            if let Some(first) = &dup.first {
                d = d.with_label(Span::new(self.file, first.clone()), "first written here");
            }
            self.diags.push(d);
        }
        true
    }

    fn leftover_duplicates(&mut self) {
        let file = self.file;
        for dup in self.duplicates.iter_mut().filter(|d| !d.reported) {
            dup.reported = true;
            self.diags.push(
                Diagnostic::new(
                    &codes::DUPLICATE_ATTRIBUTE,
                    Span::new(file, dup.range.clone()),
                    format!("`{}` is written twice in the same block or object", dup.key),
                )
                .with_help("remove or rename one of them"),
            );
        }
    }

    fn string_map(&mut self, expr: &Expression, what: &str) -> Vec<(Name, Spanned<String>)> {
        let Some(object) = self.object(expr, what) else {
            return Vec::new();
        };
        let entries = self.entries(object, what, None);
        entries
            .into_iter()
            .filter_map(|(key, value)| {
                let v = self.string(value, &format!("`{}` in {what}", key.value))?;
                Some((key, v))
            })
            .collect()
    }

    fn repo(&mut self, expr: &Expression, what: &str) -> Option<Repo> {
        let object = self.object(expr, what)?;
        let entries = self.entries(object, what, Some(&["repo", "branch"]));
        let mut repo = None;
        let mut branch = None;
        for (key, value) in entries {
            match key.value.as_str() {
                "repo" => repo = self.string(value, &format!("`repo` of {what}")),
                _ => branch = self.string(value, &format!("`branch` of {what}")),
            }
        }
        let span = self.span(expr);
        let (Some(repo), Some(branch)) = (repo, branch) else {
            self.report(
                Diagnostic::new(
                    &codes::INVALID_REPO,
                    span,
                    format!("{what} needs both `repo` and `branch`"),
                )
                .with_help("write `{ repo = \"owner/name\", branch = \"main\" }`"),
            );
            return None;
        };
        let valid_repo = {
            let parts: Vec<&str> = repo.value.split('/').collect();
            parts.len() == 2
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                })
        };
        if !valid_repo {
            self.report(
                Diagnostic::new(
                    &codes::INVALID_REPO,
                    repo.span.clone(),
                    format!(
                        "repository `{}` in {what} is not of the form owner/name",
                        repo.value
                    ),
                )
                .with_help("write the GitHub-style `owner/name`, for example `acme/datamodel`"),
            );
        }
        if branch.value.trim().is_empty() || branch.value.chars().any(char::is_whitespace) {
            self.report(
                Diagnostic::new(
                    &codes::INVALID_REPO,
                    branch.span.clone(),
                    format!("branch `{}` in {what} is not a branch name", branch.value),
                )
                .with_help("name a branch without spaces, for example `main`"),
            );
        }
        Some(Repo { repo, branch, span })
    }

    fn trigger(&mut self, expr: &Expression, what: &str) -> Option<Spanned<Trigger>> {
        let object = self.object(expr, what)?;
        let span = self.span(expr);
        let entries = self.entries(object, what, Some(&["interval", "cron", "external"]));
        if entries.len() != 1 {
            if entries.len() > 1 || object.is_empty() {
                self.report(
                    Diagnostic::new(
                        &codes::INVALID_TRIGGER,
                        span,
                        format!("{what} needs exactly one of `interval`, `cron` or `external`"),
                    )
                    .with_help("write `{ interval = \"5m\" }`, `{ cron = \"*/5 * * * *\" }` or `{ external = true }`"),
                );
            }
            return None;
        }
        let (key, value) = &entries[0];
        match key.value.as_str() {
            "interval" => {
                let text = self.string(value, &format!("`interval` of {what}"))?;
                match trigger::parse_duration(&text.value) {
                    Ok(seconds) => Some(Spanned::new(Trigger::Interval(seconds), span)),
                    Err(why) => {
                        self.report(
                            Diagnostic::new(
                                &codes::INVALID_TRIGGER,
                                text.span,
                                format!("interval `{}` of {what} {why}", text.value),
                            )
                            .with_help(
                                "write a positive duration such as `30s`, `5m`, `1h30m` or `1d`",
                            ),
                        );
                        None
                    }
                }
            }
            "cron" => {
                let text = self.string(value, &format!("`cron` of {what}"))?;
                match trigger::check_cron(&text.value) {
                    Ok(()) => Some(Spanned::new(Trigger::Cron(text.value), span)),
                    Err(why) => {
                        self.report(
                            Diagnostic::new(
                                &codes::INVALID_TRIGGER,
                                text.span,
                                format!("cron `{}` of {what} is invalid: {why}", text.value),
                            )
                            .with_help("write five fields: minute hour day-of-month month day-of-week, for example `*/5 * * * *`"),
                        );
                        None
                    }
                }
            }
            _ => {
                let external = self.bool(value, &format!("`external` of {what}"))?;
                if external {
                    Some(Spanned::new(Trigger::External, span))
                } else {
                    self.report(
                        Diagnostic::new(
                            &codes::INVALID_TRIGGER,
                            span,
                            format!("{what} says `external = false`, which is no trigger"),
                        )
                        .with_help("use `{ external = true }`, or an interval or cron"),
                    );
                    None
                }
            }
        }
    }

    fn classifications(&mut self, expr: &Expression, what: &str) -> Vec<Spanned<Classification>> {
        let Some(list) = self.string_list(expr, &format!("`classifications` of {what}")) else {
            return Vec::new();
        };
        list.into_iter()
            .filter_map(|item| match Classification::parse(&item.value) {
                Some(c) => Some(Spanned::new(c, item.span)),
                None => {
                    self.report(
                        Diagnostic::new(
                            &codes::INVALID_CLASSIFICATION,
                            item.span,
                            format!(
                                "classification `{}` of {what} is not `TYPE` or `TYPE:name`",
                                item.value
                            ),
                        )
                        .with_help("write for example `PC3` or `PC3:email`"),
                    );
                    None
                }
            })
            .collect()
    }

    fn documentation(&mut self, fields: &Fields<'_>) -> Option<Documentation> {
        let block = self.single_block(fields, "documentation")?;
        let what = format!("the documentation of {}", fields.what);
        let owner = self.header(block);
        let doc_fields = self.fields(
            &block.body,
            what.clone(),
            owner,
            &["text", "markdown", "tags"],
            &[],
        );
        let mut doc = Documentation::default();
        if let Some(a) = doc_fields.attr("text") {
            doc.text = self
                .string(&a.value, &format!("`text` of {what}"))
                .map(|s| s.value);
        }
        if let Some(a) = doc_fields.attr("markdown") {
            doc.markdown = self
                .string(&a.value, &format!("`markdown` of {what}"))
                .map(|s| s.value);
        }
        if let Some(a) = doc_fields.attr("tags") {
            doc.tags = self
                .string_map(&a.value, &format!("`tags` of {what}"))
                .into_iter()
                .map(|(k, v)| (k.value, v.value))
                .collect();
        }
        if doc_fields.attr("text").is_none() && doc_fields.attr("markdown").is_none() {
            self.missing(&doc_fields, "text", " = \"...\"` or `markdown = \"...\"");
        }
        Some(doc)
    }

    // ---- blocks ----

    fn top_level(&mut self, body: &Body, model: &mut Model) {
        let owner = Span::new(self.file, 0..0);
        let fields = self.fields(
            body,
            "a model file".to_string(),
            owner,
            &[],
            &["ecosystem", "platform", "assignment", "zone", "team"],
        );
        for block in &fields.blocks {
            match block_kind(block) {
                "ecosystem" => {
                    if let Some(e) = self.ecosystem(block) {
                        model.ecosystems.push(e);
                    }
                }
                "platform" => {
                    if let Some(p) = self.platform(block) {
                        model.platforms.push(p);
                    }
                }
                "assignment" => {
                    if let Some(a) = self.assignment(block) {
                        model.assignments.push(a);
                    }
                }
                "zone" => {
                    if let Some(z) = self.zone(block) {
                        model.zones.push(z);
                    }
                }
                _ => {
                    if let Some(t) = self.team(block) {
                        model.teams.push(t);
                    }
                }
            }
        }
    }

    fn ecosystem(&mut self, block: &Block) -> Option<Ecosystem> {
        let name = self.single_label(block, "an `ecosystem` block", "name")?;
        let what = format!("ecosystem `{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["owning_repo"],
            &["documentation", "vendor", "zone_declaration"],
        );
        let owning_repo = match fields.attr("owning_repo") {
            Some(a) => self.repo(&a.value, &format!("`owning_repo` of {what}")),
            None => {
                self.report(
                    Diagnostic::new(
                        &codes::MISSING_OWNING_REPO,
                        span.clone(),
                        format!("{what} has no `owning_repo`"),
                    )
                    .with_help("add `owning_repo = { repo = \"owner/name\", branch = \"main\" }`: the repo that owns the ecosystem, platforms and assignments"),
                );
                None
            }
        };
        let documentation = self.documentation(&fields);
        let vendors = fields
            .blocks("vendor")
            .filter_map(|b| self.vendor(b))
            .collect();
        let zone_declarations = fields
            .blocks("zone_declaration")
            .filter_map(|b| self.declaration(b, "zone_declaration", "zone"))
            .collect();
        Some(Ecosystem {
            name,
            owning_repo,
            documentation,
            vendors,
            zone_declarations,
            span,
        })
    }

    fn declaration(&mut self, block: &Block, kind: &str, noun: &str) -> Option<Declaration> {
        let name = self.single_label(block, &format!("a `{kind}` block"), noun)?;
        let span = self.header(block);
        let what = format!("{kind} `{}`", name.value);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["owning_repo"],
            &[],
        );
        let owning_repo = match fields.attr("owning_repo") {
            Some(a) => self.repo(&a.value, &format!("`owning_repo` of {what}")),
            None => {
                self.report(
                    Diagnostic::new(
                        &codes::MISSING_OWNING_REPO,
                        span.clone(),
                        format!("{what} has no `owning_repo`"),
                    )
                    .with_help(format!("add `owning_repo = {{ repo = \"owner/name\", branch = \"main\" }}`: the repo that owns the {noun}'s definition")),
                );
                None
            }
        };
        Some(Declaration {
            name,
            owning_repo,
            span,
        })
    }

    fn vendor(&mut self, block: &Block) -> Option<Vendor> {
        let name = self.single_label(block, "a `vendor` block", "name")?;
        let what = format!("vendor `{}`", name.value);
        let fields = self.fields(
            &block.body,
            what.clone(),
            self.header(block),
            &["cloud"],
            &["documentation", "location"],
        );
        let cloud = match fields.attr("cloud") {
            Some(a) => self.choice(&a.value, &format!("`cloud` of {what}"), CLOUDS),
            None => {
                self.missing(&fields, "cloud", " = \"PRIVATE\"");
                None
            }
        };
        let documentation = self.documentation(&fields);
        let locations = fields
            .blocks("location")
            .filter_map(|b| self.location(b))
            .collect();
        Some(Vendor {
            name,
            cloud,
            documentation,
            locations,
        })
    }

    fn location(&mut self, block: &Block) -> Option<Location> {
        let name = self.single_label(block, "a `location` block", "name")?;
        let what = format!("location `{}`", name.value);
        let fields = self.fields(&block.body, what, self.header(block), &[], &["location"]);
        let locations = fields
            .blocks("location")
            .filter_map(|b| self.location(b))
            .collect();
        Some(Location { name, locations })
    }

    fn platform(&mut self, block: &Block) -> Option<Platform> {
        let name = self.single_label(block, "a `platform` block", "name")?;
        let what = format!("platform `{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["locations", "credentials", "state"],
            &["merge_db", "kafka_connect", "object_store", "data_platform"],
        );
        let locations = fields
            .attr("locations")
            .and_then(|a| self.string_list(&a.value, &format!("`locations` of {what}")))
            .unwrap_or_default();
        let merge_db = self.single_block(&fields, "merge_db").map(|b| {
            let f = self.fields(
                &b.body,
                format!("the `merge_db` of {what}"),
                self.header(b),
                &["host", "port", "database", "credential"],
                &[],
            );
            MergeDb {
                host: self.required_string(&f, "host", " = \"127.0.0.1\""),
                port: match f.attr("port") {
                    Some(a) => self.port(&a.value, &format!("`port` of {}", f.what)),
                    None => {
                        self.missing(&f, "port", " = 5432");
                        None
                    }
                },
                database: self.required_string(&f, "database", " = \"datasurface\""),
                credential: self.required_string(&f, "credential", " = \"merge_rw\""),
                span: self.header(b),
            }
        });
        let kafka_connect = self.single_block(&fields, "kafka_connect").map(|b| {
            let f = self.fields(
                &b.body,
                format!("the `kafka_connect` of {what}"),
                self.header(b),
                &["url", "bootstrap_servers", "credential"],
                &[],
            );
            KafkaConnect {
                url: self.required_string(&f, "url", " = \"http://127.0.0.1:8083\""),
                bootstrap_servers: self.required_string(
                    &f,
                    "bootstrap_servers",
                    " = \"127.0.0.1:9092\"",
                ),
                credential: self.optional_string(&f, "credential"),
                span: self.header(b),
            }
        });
        let object_store = self.single_block(&fields, "object_store").map(|b| {
            let f = self.fields(
                &b.body,
                format!("the `object_store` of {what}"),
                self.header(b),
                &["endpoint", "region", "credential"],
                &["bucket"],
            );
            ObjectStore {
                endpoint: self.required_string(&f, "endpoint", " = \"http://127.0.0.1:9000\""),
                region: self.optional_string(&f, "region"),
                credential: self.required_string(&f, "credential", " = \"object_store\""),
                buckets: f.blocks("bucket").filter_map(|b| self.bucket(b)).collect(),
                span: self.header(b),
            }
        });
        let credentials = fields
            .attr("credentials")
            .and_then(|a| self.credentials(&a.value, &format!("`credentials` of {what}")));
        let state = fields
            .attr("state")
            .and_then(|a| self.state_backend(&a.value, &format!("`state` of {what}")));
        let data_platforms = fields
            .blocks("data_platform")
            .filter_map(|b| self.data_platform(b))
            .collect();
        Some(Platform {
            name,
            locations,
            merge_db,
            kafka_connect,
            object_store,
            credentials,
            state,
            data_platforms,
            span,
        })
    }

    fn required_string(
        &mut self,
        fields: &Fields<'_>,
        name: &str,
        hint: &str,
    ) -> Option<Spanned<String>> {
        match fields.attr(name) {
            Some(a) => self.string(&a.value, &format!("`{name}` of {}", fields.what)),
            None => {
                self.missing(fields, name, hint);
                None
            }
        }
    }

    fn optional_string(&mut self, fields: &Fields<'_>, name: &str) -> Option<Spanned<String>> {
        let attr = fields.attr(name)?;
        self.string(&attr.value, &format!("`{name}` of {}", fields.what))
    }

    fn optional_bool(&mut self, fields: &Fields<'_>, name: &str) -> bool {
        fields
            .attr(name)
            .and_then(|a| self.bool(&a.value, &format!("`{name}` of {}", fields.what)))
            .unwrap_or(false)
    }

    fn bucket(&mut self, block: &Block) -> Option<Bucket> {
        let name = self.single_label(block, "a `bucket` block", "name")?;
        let what = format!("bucket `{}`", name.value);
        let fields = self.fields(
            &block.body,
            what.clone(),
            self.header(block),
            &["versioning", "lifecycle", "tags", "policy"],
            &[],
        );
        let versioning = self.optional_bool(&fields, "versioning");
        let mut expire_after_days = None;
        if let Some(a) = fields.attr("lifecycle") {
            let lifecycle_what = format!("`lifecycle` of {what}");
            if let Some(object) = self.object(&a.value, &lifecycle_what) {
                for (_, value) in
                    self.entries(object, &lifecycle_what, Some(&["expire_after_days"]))
                {
                    if let Some(days) =
                        self.int(value, &format!("`expire_after_days` of {lifecycle_what}"))
                    {
                        if days.value <= 0 || days.value > i64::from(u32::MAX) {
                            self.error(
                                &codes::INVALID_VALUE,
                                days.span,
                                format!("`expire_after_days` of {what} must be a positive number of days"),
                            );
                        } else {
                            expire_after_days = Some(days.value as u32);
                        }
                    }
                }
            }
        }
        let tags = fields
            .attr("tags")
            .map(|a| self.string_map(&a.value, &format!("`tags` of {what}")))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.value, v.value))
            .collect();
        let policy = self.optional_string(&fields, "policy");
        Some(Bucket {
            name,
            versioning,
            expire_after_days,
            tags,
            policy,
        })
    }

    fn credentials(&mut self, expr: &Expression, what: &str) -> Option<Spanned<CredentialSource>> {
        let object = self.object(expr, what)?;
        let span = self.span(expr);
        let mut kind = None;
        let mut path = None;
        for (key, value) in self.entries(object, what, Some(&["kind", "path"])) {
            match key.value.as_str() {
                "kind" => {
                    kind = self.choice(value, &format!("`kind` of {what}"), &["env", "directory"])
                }
                _ => path = self.string(value, &format!("`path` of {what}")),
            }
        }
        let source = match kind.as_ref().map(|k| k.value.as_str()) {
            Some("env") => {
                if let Some(path) = path {
                    self.report(
                        Diagnostic::new(
                            &codes::CREDENTIALS_SOURCE,
                            path.span,
                            format!("{what}: `path` is only for `kind = \"directory\"`"),
                        )
                        .with_help("remove `path`, or use `kind = \"directory\"`"),
                    );
                }
                CredentialSource::Env
            }
            Some(_) => CredentialSource::Directory(path.map(|p| p.value)),
            None => {
                if object
                    .iter()
                    .all(|(k, _)| key_text(k).as_deref() != Some("kind"))
                {
                    self.report(
                        Diagnostic::new(&codes::CREDENTIALS_SOURCE, span, format!("{what} has no `kind`"))
                            .with_help("write `{ kind = \"env\" }` or `{ kind = \"directory\", path = \"/etc/ds/credentials\" }`"),
                    );
                }
                return None;
            }
        };
        Some(Spanned::new(source, span))
    }

    fn state_backend(&mut self, expr: &Expression, what: &str) -> Option<StateBackend> {
        let object = self.object(expr, what)?;
        let mut state = StateBackend {
            backend: None,
            path: None,
            bucket: None,
            key: None,
            span: self.span(expr),
        };
        for (key, value) in self.entries(object, what, Some(&["backend", "path", "bucket", "key"]))
        {
            let item = format!("`{}` of {what}", key.value);
            match key.value.as_str() {
                "backend" => {
                    state.backend = self.choice(value, &item, &["local", "postgres", "s3"])
                }
                "path" => state.path = self.string(value, &item),
                "bucket" => state.bucket = self.string(value, &item),
                _ => state.key = self.string(value, &item),
            }
        }
        Some(state)
    }

    fn data_platform(&mut self, block: &Block) -> Option<DataPlatform> {
        let name = self.single_label(block, "a `data_platform` block", "name")?;
        let what = format!("data platform `{}`", name.value);
        let fields = self.fields(
            &block.body,
            what.clone(),
            self.header(block),
            &["milestoning", "staging_batches_to_keep", "archive_bucket"],
            &[],
        );
        let milestoning = match fields.attr("milestoning") {
            Some(a) => self.milestoning(&a.value, &format!("`milestoning` of {what}")),
            None => {
                self.missing(
                    &fields,
                    "milestoning",
                    " = \"LIVE_ONLY\"` or `milestoning = \"FORENSIC\"",
                );
                None
            }
        };
        let staging_batches_to_keep = fields.attr("staging_batches_to_keep").and_then(|a| {
            let n = self.int(&a.value, &format!("`staging_batches_to_keep` of {what}"))?;
            if n.value < -1 {
                self.report(
                    Diagnostic::new(
                        &codes::INVALID_VALUE,
                        n.span,
                        format!(
                            "`staging_batches_to_keep` of {what} is {}, below -1",
                            n.value
                        ),
                    )
                    .with_help("use a number of batches, or -1 to keep every batch"),
                );
                return None;
            }
            Some(n)
        });
        let archive_bucket = self.optional_string(&fields, "archive_bucket");
        Some(DataPlatform {
            name,
            milestoning,
            staging_batches_to_keep,
            archive_bucket,
        })
    }

    fn milestoning(&mut self, expr: &Expression, what: &str) -> Option<Spanned<Milestoning>> {
        let value = self.choice(expr, what, &["LIVE_ONLY", "FORENSIC"])?;
        let m = if value.value == "LIVE_ONLY" {
            Milestoning::LiveOnly
        } else {
            Milestoning::Forensic
        };
        Some(Spanned::new(m, value.span))
    }

    fn assignment(&mut self, block: &Block) -> Option<Assignment> {
        let mut labels = self.labels(
            block,
            "an `assignment` block",
            &["workspace", "dataset group"],
        )?;
        let group = labels.pop()?;
        let workspace = labels.pop()?;
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            format!("the assignment of `{}`/`{}`", workspace.value, group.value),
            span.clone(),
            &["data_platform"],
            &[],
        );
        let data_platform =
            self.required_string(&fields, "data_platform", " = \"<data platform>\"");
        Some(Assignment {
            workspace,
            group,
            data_platform,
            span,
        })
    }

    fn policy(&mut self, block: &Block, kind: &str, labelled: bool) -> Option<Policy> {
        let name = if labelled {
            Some(self.single_label(block, &format!("a `{kind}` block"), "name")?)
        } else {
            if !block.labels.is_empty() {
                self.labels(block, &format!("a `{kind}` block"), &[]);
            }
            None
        };
        let what = match &name {
            Some(n) => format!("{kind} `{}`", n.value),
            None => format!("the {kind}"),
        };
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["allowed", "not_allowed"],
            &[],
        );
        let allowed = fields
            .attr("allowed")
            .and_then(|a| self.string_list(&a.value, &format!("`allowed` of {what}")));
        let not_allowed = fields
            .attr("not_allowed")
            .and_then(|a| self.string_list(&a.value, &format!("`not_allowed` of {what}")))
            .unwrap_or_default();
        if fields.attr("allowed").is_none() && fields.attr("not_allowed").is_none() {
            self.missing(&fields, "allowed", " = [...]` or `not_allowed = [...]");
        }
        Some(Policy {
            name,
            allowed,
            not_allowed,
            span,
        })
    }

    fn zone(&mut self, block: &Block) -> Option<Zone> {
        let name = self.single_label(block, "a `zone` block", "name")?;
        let what = format!("zone `{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what,
            span.clone(),
            &[],
            &[
                "documentation",
                "team_declaration",
                "classification_policy",
                "location_policy",
                "vendor_policy",
                "data_platform_policy",
            ],
        );
        let documentation = self.documentation(&fields);
        let team_declarations = fields
            .blocks("team_declaration")
            .filter_map(|b| self.declaration(b, "team_declaration", "team"))
            .collect();
        let mut policies = |kind: &str| -> Vec<Policy> {
            fields
                .blocks(kind)
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|b| self.policy(b, kind, true))
                .collect()
        };
        let classification_policies = policies("classification_policy");
        let location_policies = policies("location_policy");
        let vendor_policies = policies("vendor_policy");
        let data_platform_policies = policies("data_platform_policy");
        Some(Zone {
            name,
            documentation,
            team_declarations,
            classification_policies,
            location_policies,
            vendor_policies,
            data_platform_policies,
            span,
        })
    }

    fn team(&mut self, block: &Block) -> Option<Team> {
        let mut labels = self.labels(block, "a `team` block", &["zone", "team"])?;
        let name = labels.pop()?;
        let zone = labels.pop()?;
        let what = format!("team `{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what,
            span.clone(),
            &[],
            &["documentation", "datastore", "workspace"],
        );
        let documentation = self.documentation(&fields);
        let datastores = fields
            .blocks("datastore")
            .filter_map(|b| self.datastore(b, false))
            .collect();
        let workspaces = fields
            .blocks("workspace")
            .filter_map(|b| self.workspace(b))
            .collect();
        Some(Team {
            zone,
            name,
            documentation,
            datastores,
            workspaces,
            span,
        })
    }

    fn production_status(&mut self, fields: &Fields<'_>) -> ProductionStatus {
        let Some(a) = fields.attr("production_status") else {
            return ProductionStatus::NotProduction;
        };
        match self
            .choice(
                &a.value,
                &format!("`production_status` of {}", fields.what),
                &["PRODUCTION", "NOT_PRODUCTION"],
            )
            .as_ref()
            .map(|v| v.value.as_str())
        {
            Some("PRODUCTION") => ProductionStatus::Production,
            _ => ProductionStatus::NotProduction,
        }
    }

    /// A `datastore` block, or (with `output`) a transformer's `output` block.
    fn datastore(&mut self, block: &Block, output: bool) -> Option<Datastore> {
        let kind = if output { "output" } else { "datastore" };
        let name = self.single_label(block, &format!("a `{kind}` block"), "store")?;
        let what = if output {
            format!("output store `{}`", name.value)
        } else {
            format!("datastore `{}`", name.value)
        };
        let span = self.header(block);
        let blocks: &[&str] = if output {
            &["documentation", "dataset"]
        } else {
            &["documentation", "capture", "dataset"]
        };
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["production_status", "deprecated"],
            blocks,
        );
        let production_status = self.production_status(&fields);
        let deprecated = self.optional_bool(&fields, "deprecated");
        let documentation = self.documentation(&fields);
        let captures = fields
            .blocks("capture")
            .filter_map(|b| self.capture(b, &what))
            .collect();
        let datasets = fields
            .blocks("dataset")
            .filter_map(|b| self.dataset(b, &name.value))
            .collect();
        Some(Datastore {
            name,
            production_status,
            deprecated,
            documentation,
            captures,
            datasets,
            span,
        })
    }

    fn capture(&mut self, block: &Block, store: &str) -> Option<Capture> {
        let kind_label = self.single_label(block, "a `capture` block", "kind")?;
        let kind = CaptureKind::parse(&kind_label.value);
        if kind.is_none() {
            let help = match did_you_mean(&kind_label.value, CaptureKind::NAMES.iter().copied()) {
                Some(close) => format!("did you mean `\"{close}\"`?"),
                None => format!("use one of {}", quoted_list(CaptureKind::NAMES)),
            };
            self.report(
                Diagnostic::new(
                    &codes::INVALID_VALUE,
                    kind_label.span.clone(),
                    format!(
                        "capture kind `{}` of {store} is not one of {}",
                        kind_label.value,
                        quoted_list(CaptureKind::NAMES)
                    ),
                )
                .with_help(help),
            );
        }
        let what = format!("the capture of {store}");
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &[
                "consistency",
                "trigger",
                "credential",
                "table_for_dataset",
                "watermark",
                "topic_for_dataset",
                "locations",
            ],
            &["source"],
        );
        let single_dataset = fields
            .attr("consistency")
            .and_then(|a| {
                self.choice(
                    &a.value,
                    &format!("`consistency` of {what}"),
                    &["MULTI_DATASET", "SINGLE_DATASET"],
                )
            })
            .is_some_and(|v| v.value == "SINGLE_DATASET");
        let trigger = fields
            .attr("trigger")
            .and_then(|a| self.trigger(&a.value, &format!("`trigger` of {what}")));
        let credential = self.optional_string(&fields, "credential");
        let source = self
            .single_block(&fields, "source")
            .and_then(|b| self.source(b, &what));
        let table_for_dataset = fields
            .attr("table_for_dataset")
            .map(|a| self.string_map(&a.value, &format!("`table_for_dataset` of {what}")))
            .unwrap_or_default();
        let topic_for_dataset = fields
            .attr("topic_for_dataset")
            .map(|a| self.string_map(&a.value, &format!("`topic_for_dataset` of {what}")))
            .unwrap_or_default();
        let watermark = fields.attr("watermark").and_then(|a| {
            let watermark_what = format!("`watermark` of {what}");
            let object = self.object(&a.value, &watermark_what)?;
            let entries = self.entries(object, &watermark_what, Some(&["column"]));
            match entries.first() {
                Some((_, value)) => self.string(value, &format!("`column` of {watermark_what}")),
                None => {
                    self.report(
                        Diagnostic::new(
                            &codes::MISSING_ATTRIBUTE,
                            self.span(&a.value),
                            format!("{watermark_what} has no `column`"),
                        )
                        .with_help("write `watermark = { column = \"updated_at\" }`"),
                    );
                    None
                }
            }
        });
        let locations = fields
            .attr("locations")
            .and_then(|a| self.string_list(&a.value, &format!("`locations` of {what}")))
            .unwrap_or_default();
        Some(Capture {
            kind,
            single_dataset,
            trigger,
            credential,
            source,
            table_for_dataset,
            watermark,
            topic_for_dataset,
            locations,
            span,
        })
    }

    fn source(&mut self, block: &Block, capture: &str) -> Option<SourceDb> {
        let what = format!("the source of {capture}");
        let fields = self.fields(
            &block.body,
            what.clone(),
            self.header(block),
            &[],
            &["postgres", "mysql"],
        );
        if fields.blocks.len() != 1 {
            let span = fields
                .blocks
                .get(1)
                .map_or_else(|| self.header(block), |b| self.header(b));
            self.report(
                Diagnostic::new(
                    &codes::MISSING_ATTRIBUTE,
                    span,
                    format!(
                        "{what} needs exactly one `postgres` or `mysql` block, found {}",
                        fields.blocks.len()
                    ),
                )
                .with_help("write `source { postgres { host = ..., database = ... } }`"),
            );
            if fields.blocks.is_empty() {
                return None;
            }
        }
        let engine_block = fields.blocks[0];
        if !engine_block.labels.is_empty() {
            self.labels(
                engine_block,
                &format!("a `{}` block", block_kind(engine_block)),
                &[],
            );
        }
        let engine = if block_kind(engine_block) == "postgres" {
            SourceEngine::Postgres
        } else {
            SourceEngine::Mysql
        };
        let engine_what = format!("the `{}` source of {capture}", block_kind(engine_block));
        let span = self.header(engine_block);
        let f = self.fields(
            &engine_block.body,
            engine_what,
            span.clone(),
            &["host", "port", "database", "schema"],
            &[],
        );
        Some(SourceDb {
            engine,
            host: self.required_string(&f, "host", " = \"db.example.com\""),
            port: f
                .attr("port")
                .and_then(|a| self.port(&a.value, &format!("`port` of {}", f.what))),
            database: self.required_string(&f, "database", " = \"<database>\""),
            schema: self.optional_string(&f, "schema"),
            span,
            source_span: self.header(block),
        })
    }

    fn dataset(&mut self, block: &Block, store: &str) -> Option<Dataset> {
        let name = self.single_label(block, "a `dataset` block", "dataset")?;
        let what = format!("dataset `{store}.{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["classifications", "deprecated"],
            &["documentation", "table"],
        );
        let (classifications, classifications_span) = match fields.attr("classifications") {
            Some(a) => (self.classifications(&a.value, &what), Some(self.span(a))),
            None => (Vec::new(), None),
        };
        let deprecated = self.optional_bool(&fields, "deprecated");
        let documentation = self.documentation(&fields);
        let table = match self.single_block(&fields, "table") {
            Some(b) => self.table(b, &what),
            None => {
                self.report(
                    Diagnostic::new(&codes::MISSING_ATTRIBUTE, span.clone(), format!("{what} has no `table` block"))
                        .with_help("add `table { columns = { id = { type = \"integer\", nullable = false, primary_key = true } } }`"),
                );
                None
            }
        };
        Some(Dataset {
            name,
            classifications,
            classifications_span,
            deprecated,
            documentation,
            table,
            span,
        })
    }

    fn table(&mut self, block: &Block, dataset: &str) -> Option<Table> {
        let what = format!("the table of {dataset}");
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["columns", "primary_key", "partition_key"],
            &[],
        );
        let mut columns = Vec::new();
        match fields.attr("columns") {
            Some(a) => {
                if let Some(object) = self.object(&a.value, &format!("`columns` of {what}")) {
                    // Duplicate columns are a rule 2 problem (duplicate names), not a syntax one.
                    let columns_what = dataset.to_string();
                    for (key, value) in object.iter() {
                        let key_span = self.span(key);
                        if self.duplicate(&key_span, &columns_what, &codes::DUPLICATE_NAME) {
                            continue;
                        }
                        let Some(name) = key_text(key) else {
                            self.error(
                                &codes::EXPRESSION,
                                key_span,
                                format!("a column name in {what} is an expression"),
                            );
                            continue;
                        };
                        if let Some(column) =
                            self.column(Spanned::new(name, key_span), value.expr(), dataset)
                        {
                            columns.push(column);
                        }
                    }
                    if object.is_empty() {
                        self.report(
                            Diagnostic::new(
                                &codes::MISSING_ATTRIBUTE,
                                self.span(&a.value),
                                format!("{what} has no columns"),
                            )
                            .with_help("add at least one column: `id = { type = \"integer\" }`"),
                        );
                    }
                }
            }
            None => self.missing(&fields, "columns", " = { id = { type = \"integer\" } }"),
        }
        let key_list =
            |cx: &mut Self, name: &str| -> (Option<Vec<Spanned<String>>>, Option<Span>) {
                match fields.attr(name) {
                    Some(a) => (
                        cx.string_list(&a.value, &format!("`{name}` of {what}")),
                        Some(cx.span(a)),
                    ),
                    None => (None, None),
                }
            };
        let (primary_key, primary_key_span) = key_list(self, "primary_key");
        let (partition_key, _) = key_list(self, "partition_key");
        Some(Table {
            columns,
            primary_key,
            primary_key_span,
            partition_key,
            span,
        })
    }

    fn column(&mut self, name: Name, expr: &Expression, dataset: &str) -> Option<Column> {
        let what = format!("column `{}` of {dataset}", name.value);
        let object = self.object(expr, &what)?;
        let span = Span::new(self.file, name.span.range.start..self.span(expr).range.end);
        let entries = self.entries(
            object,
            &what,
            Some(&["type", "nullable", "primary_key", "classifications", "doc"]),
        );
        let mut column = Column {
            name,
            ty: None,
            nullable: true,
            nullable_span: None,
            primary_key: false,
            classifications: Vec::new(),
            doc: None,
            span: span.clone(),
        };
        let mut has_type = false;
        for (key, value) in entries {
            let item = format!("`{}` of {what}", key.value);
            match key.value.as_str() {
                "type" => {
                    has_type = true;
                    column.ty = self.column_type(value, &what);
                }
                "nullable" => {
                    column.nullable = self.bool(value, &item).unwrap_or(true);
                    column.nullable_span = Some(Span::new(
                        self.file,
                        key.span.range.start..self.span(value).range.end,
                    ));
                }
                "primary_key" => column.primary_key = self.bool(value, &item).unwrap_or(false),
                "classifications" => column.classifications = self.classifications(value, &what),
                _ => column.doc = self.string(value, &item).map(|s| s.value),
            }
        }
        if !has_type {
            self.report(
                Diagnostic::new(
                    &codes::MISSING_ATTRIBUTE,
                    span,
                    format!("{what} has no `type`"),
                )
                .with_help("add `type = \"...\"`, for example `type = \"varchar(100)\"`"),
            );
        }
        Some(column)
    }

    fn column_type(&mut self, expr: &Expression, what: &str) -> Option<Spanned<ColumnType>> {
        let text = self.string(expr, &format!("the type of {what}"))?;
        match ColumnType::parse(&text.value) {
            Ok(ty) => Some(Spanned::new(ty, text.span)),
            Err(TypeError::Unknown) => {
                let base = text.value.split('(').next().unwrap_or("").trim();
                let help = match did_you_mean(base, TYPE_NAMES.iter().copied()) {
                    Some(close) if close != base.to_ascii_lowercase() => format!("did you mean `{close}`?"),
                    _ => "types are boolean, smallint, integer, bigint, real, double, decimal(P,S), char(n), varchar(n), varchar, text, date, timestamp, timestamptz, interval, json, uuid, bytea".to_string(),
                };
                self.report(
                    Diagnostic::new(
                        &codes::INVALID_TYPE,
                        text.span,
                        format!("`{}` is not a column type ({what})", text.value),
                    )
                    .with_help(help),
                );
                None
            }
            Err(TypeError::BadSize(why)) => {
                self.report(
                    Diagnostic::new(
                        &codes::INVALID_SIZE,
                        text.span,
                        format!("type `{}` of {what}: {why}", text.value),
                    )
                    .with_help("sizes and precisions are positive whole numbers"),
                );
                None
            }
            Err(TypeError::ScaleAbovePrecision { precision, scale }) => {
                self.report(
                    Diagnostic::new(
                        &codes::DECIMAL_SCALE,
                        text.span,
                        format!("type `{}` of {what} has scale {scale} above precision {precision}", text.value),
                    )
                    .with_help("in decimal(P,S), P counts all digits and S those after the point, so S ≤ P"),
                );
                None
            }
        }
    }

    /// The placeholders of a transformer's SQL, each placed on its `{{ ... }}` in the file. The SQL value is
    /// unescaped (and dedented, for `<<-` heredocs), so offsets are found again in the raw source: the n-th
    /// `{{` of the value is the n-th `{{` of the source.
    fn placeholders(
        &self,
        sql: &Spanned<String>,
    ) -> Vec<Spanned<Result<crate::template::Input, String>>> {
        let found = crate::template::placeholders(&sql.value);
        let raw = &self.text[sql.span.range.clone()];
        let raw_found = crate::template::placeholders(raw);
        let aligned = raw_found.len() == found.len();
        found
            .into_iter()
            .enumerate()
            .map(|(i, placeholder)| {
                let span = if aligned {
                    let range = &raw_found[i].range;
                    let start = sql.span.range.start;
                    Span::new(self.file, start + range.start..start + range.end)
                } else {
                    sql.span.clone()
                };
                Spanned::new(placeholder.input, span)
            })
            .collect()
    }

    fn workspace(&mut self, block: &Block) -> Option<Workspace> {
        let name = self.single_label(block, "a `workspace` block", "workspace")?;
        let what = format!("workspace `{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["priority", "production_status"],
            &["classification_verifier", "dataset_group", "transformer"],
        );
        let priority = fields
            .attr("priority")
            .and_then(|a| self.choice(&a.value, &format!("`priority` of {what}"), PRIORITIES));
        let production_status = self.production_status(&fields);
        let classification_verifier = self
            .single_block(&fields, "classification_verifier")
            .and_then(|b| self.policy(b, "classification_verifier", false));
        let groups = fields
            .blocks("dataset_group")
            .filter_map(|b| self.dataset_group(b, &name.value))
            .collect();
        let transformers = fields
            .blocks("transformer")
            .filter_map(|b| self.transformer(b, &name.value))
            .collect();
        Some(Workspace {
            name,
            priority,
            production_status,
            classification_verifier,
            groups,
            transformers,
            span,
        })
    }

    fn dataset_group(&mut self, block: &Block, workspace: &str) -> Option<DatasetGroup> {
        let name = self.single_label(block, "a `dataset_group` block", "group")?;
        let what = format!("dataset group `{workspace}.{}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["requirements"],
            &["sink"],
        );
        let requirements = fields.attr("requirements").and_then(|a| {
            let req_what = format!("`requirements` of {what}");
            let object = self.object(&a.value, &req_what)?;
            let mut req = Requirements {
                milestoning: None,
                latency: None,
                span: self.span(a),
            };
            for (key, value) in self.entries(object, &req_what, Some(&["milestoning", "latency"])) {
                let item = format!("`{}` of {req_what}", key.value);
                if key.value == "milestoning" {
                    req.milestoning = self.milestoning(value, &item);
                } else {
                    req.latency = self.choice(value, &item, LATENCIES);
                }
            }
            Some(req)
        });
        let sinks = fields
            .blocks("sink")
            .filter_map(|b| {
                let mut labels = self.labels(b, "a `sink` block", &["store", "dataset"])?;
                let dataset = labels.pop()?;
                let store = labels.pop()?;
                let sink_span = self.header(b);
                let f = self.fields(
                    &b.body,
                    format!("sink `{}.{}` of {what}", store.value, dataset.value),
                    sink_span.clone(),
                    &["deprecations_allowed"],
                    &[],
                );
                let deprecations_allowed = self.optional_bool(&f, "deprecations_allowed");
                Some(Sink {
                    store,
                    dataset,
                    deprecations_allowed,
                    span: sink_span,
                })
            })
            .collect();
        Some(DatasetGroup {
            name,
            requirements,
            sinks,
            span,
        })
    }

    fn transformer(&mut self, block: &Block, workspace: &str) -> Option<Transformer> {
        let name = self.single_label(block, "a `transformer` block", "name")?;
        let what = format!("transformer `{}` of workspace `{workspace}`", name.value);
        let span = self.header(block);
        let fields = self.fields(
            &block.body,
            what.clone(),
            span.clone(),
            &["trigger", "sql"],
            &["output"],
        );
        let trigger = fields
            .attr("trigger")
            .and_then(|a| self.trigger(&a.value, &format!("`trigger` of {what}")));
        let sql = self.required_string(&fields, "sql", " = <<-SQL ... SQL");
        let inputs = sql
            .as_ref()
            .map(|sql| self.placeholders(sql))
            .unwrap_or_default();
        let outputs = fields
            .blocks("output")
            .filter_map(|b| self.datastore(b, true))
            .collect();
        Some(Transformer {
            name,
            trigger,
            sql,
            inputs,
            outputs,
            span,
        })
    }
}
