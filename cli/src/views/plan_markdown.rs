//! The plan as GitHub-flavoured Markdown, for a pull-request comment (`ds plan --format markdown`).
//!
//! Anatomy: a title with the counts; a `[!CAUTION]` banner when anything is destroyed and a `[!WARNING]`
//! one when `ds apply` would refuse the plan; a table of counts by resource type and action; for small
//! plans a mermaid graph of the changes that depend on each other; then one collapsible `<details>` block per change, grouped by type.
//!
//! The comment never exceeds `limit` characters (GitHub refuses comments over 65,536). The title, banners and
//! table are always complete; per-resource blocks are added while they fit, destroys first, then updates,
//! then creates, and a final note says how many were left out. The work is linear in the plan's size (a
//! first plan of a large model has 100,000 changes). Secret-derived values are never shown.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use planner::planfile::{AttributeDiff, Change, PlanFile};
use serde_json::Value;

/// At most this many addresses are listed in each banner; the rest are counted.
const BANNER_ADDRESSES: usize = 20;
/// A plan with at most this many changes gets a mermaid graph.
const GRAPH_CHANGES: usize = 30;
/// The body of one change's block is cut at this many bytes, so that one huge resource cannot crowd out
/// the others.
const BLOCK_BODY: usize = 4_000;
/// One line of a block's body is cut at this many bytes.
const BLOCK_LINE: usize = 1_000;
/// The width within which [`push_pretty`] keeps a value on one line.
const WIDTH: usize = 100;
/// No block is shorter than this (its markup without address, reason or body).
const SMALLEST_BLOCK: usize = 80;
/// After this many blocks in a row that do not fit, the rest are not tried (keeps a huge plan linear).
const MISSES: usize = 64;

/// Renders the plan as Markdown of at most `limit` bytes (so at most `limit` characters).
pub(crate) fn render(plan: &PlanFile, limit: usize) -> String {
    let mut out = if plan.has_changes() {
        with_changes(plan, limit)
    } else {
        no_changes(plan)
    };
    if out.len() > limit {
        // Only for limits too small to hold even the title and table: cut, on a character boundary.
        let mut end = limit;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

fn no_changes(plan: &PlanFile) -> String {
    let resources = plural(plan.summary.no_op, "resource", "resources");
    if plan.refreshed {
        format!("### ds plan: no changes\n\nThe real systems match the model ({resources}).\n")
    } else {
        format!(
            "### ds plan: no changes\n\nThe recorded state matches the model ({resources}); the real \
             systems were not read (no refresh), so drift is not shown.\n"
        )
    }
}

fn with_changes(plan: &PlanFile, limit: usize) -> String {
    // By (provider, type), then address: the order of `PlanFile::grouped`, as positions in `changes`.
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, change) in plan.changes.iter().enumerate() {
        groups
            .entry((change.provider.as_str(), change.kind.as_str()))
            .or_default()
            .push(i);
    }
    let refused: BTreeSet<&str> = plan.refused.iter().map(String::as_str).collect();
    let note_room = omitted_note(plan.changes.len()).len();
    let mut out = head(plan, &groups, BANNER_ADDRESSES);
    if out.len() + note_room > limit {
        out = head(plan, &groups, 0);
    }
    if plan.changes.len() <= GRAPH_CHANGES {
        let graph = graph(plan);
        if out.len() + graph.len() + note_room <= limit {
            out.push_str(&graph);
        }
    }

    // Choose the blocks that fit, most destructive first; then write them in the table's order.
    let mut order: Vec<usize> = (0..plan.changes.len()).collect();
    order.sort_by_key(|&i| priority(&plan.changes[i], &refused));
    let mut chosen: Vec<Option<String>> = vec![None; plan.changes.len()];
    let mut opened: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut used = out.len() + note_room;
    let mut shown = 0;
    let mut misses = 0;
    let mut buffer = String::new();
    for i in order {
        if misses >= MISSES || used + SMALLEST_BLOCK > limit {
            break;
        }
        let change = &plan.changes[i];
        if used + SMALLEST_BLOCK + change.address.len() > limit {
            misses += 1;
            continue;
        }
        buffer.clear();
        block(
            &mut buffer,
            change,
            refused.contains(change.address.as_str()),
        );
        let key = (change.provider.as_str(), change.kind.as_str());
        let heading = if opened.contains(&key) {
            0
        } else {
            group_heading(key).len()
        };
        if used + heading + buffer.len() <= limit {
            used += heading + buffer.len();
            opened.insert(key);
            chosen[i] = Some(std::mem::take(&mut buffer));
            shown += 1;
            misses = 0;
        } else {
            misses += 1;
        }
    }

    for (key, members) in &groups {
        if !opened.contains(key) {
            continue;
        }
        out.push_str(&group_heading(*key));
        for &i in members {
            if let Some(text) = &chosen[i] {
                out.push_str(text);
            }
        }
    }
    let omitted = plan.changes.len() - shown;
    if omitted > 0 {
        out.push_str(&omitted_note(omitted));
    }
    out
}

/// Blocks are offered the budget in this order: refused destroys, other destroys of protected resources,
/// other destroys, updates, creates; by address within each.
fn priority(change: &Change, refused: &BTreeSet<&str>) -> u8 {
    match change.action.as_str() {
        "replace" | "delete" if refused.contains(change.address.as_str()) => 0,
        "replace" | "delete" if change.protected => 1,
        "replace" | "delete" => 2,
        "update" => 3,
        _ => 4,
    }
}

/// The title, the banners (each listing at most `listed` addresses), the table: always complete.
fn head(plan: &PlanFile, groups: &BTreeMap<(&str, &str), Vec<usize>>, listed: usize) -> String {
    let s = &plan.summary;
    let mut out = String::with_capacity(4_096);
    let _ = writeln!(
        out,
        "### ds plan: {} to create, {} to update, {} to replace, {} to delete\n",
        s.create, s.update, s.replace, s.delete
    );

    let mut destroyed: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action.as_str(), "replace" | "delete"))
        .collect();
    if !destroyed.is_empty() {
        // Protected first; address order otherwise (the sort is stable).
        destroyed.sort_by_key(|c| !c.protected);
        let replaced = destroyed.iter().filter(|c| c.action == "replace").count();
        let protected = destroyed.iter().filter(|c| c.protected).count();
        let _ = write!(
            out,
            "> [!CAUTION]\n> This plan destroys {} ({replaced} replaced, {} deleted)",
            plural(destroyed.len(), "resource", "resources"),
            destroyed.len() - replaced,
        );
        if protected > 0 {
            let _ = write!(out, ", {protected} of them protected (they hold data)");
        }
        out.push_str(if listed > 0 { ":\n" } else { ".\n" });
        for change in destroyed.iter().take(listed) {
            out.push_str("> - ");
            push_code(&mut out, &change.address);
            let _ = writeln!(
                out,
                " ({}{})",
                change.action,
                if change.protected { ", protected" } else { "" }
            );
        }
        if listed > 0 && destroyed.len() > listed {
            let _ = writeln!(
                out,
                "> - … and {} more (see the table and the changes below)",
                destroyed.len() - listed
            );
        }
        out.push('\n');
    }

    if !plan.refused.is_empty() {
        let _ = write!(
            out,
            "> [!WARNING]\n> `ds apply` refuses this plan: it would destroy data in {}. Re-run with \
             `--allow-destroy ADDR` for each one you mean to destroy",
            plural(
                plan.refused.len(),
                "protected resource",
                "protected resources"
            )
        );
        out.push_str(if listed > 0 { ":\n" } else { ".\n" });
        for address in plan.refused.iter().take(listed) {
            out.push_str("> - ");
            push_code(&mut out, address);
            out.push('\n');
        }
        if listed > 0 && plan.refused.len() > listed {
            let _ = writeln!(
                out,
                "> - … and {} more (run `ds plan` locally for the full list)",
                plan.refused.len() - listed
            );
        }
        out.push('\n');
    }

    if !plan.drift.is_empty() {
        out.push_str(&format!(
            "> [!IMPORTANT]\n> Drift: {} resource(s) changed outside ds since the last apply:\n",
            plan.drift.len()
        ));
        for drift in plan.drift.iter().take(20) {
            out.push_str(&format!(
                "> - `{}` ({} outside ds)\n",
                drift.address.replace('`', "'"),
                drift.what
            ));
        }
        if plan.drift.len() > 20 {
            out.push_str(&format!("> - … and {} more\n", plan.drift.len() - 20));
        }
        out.push('\n');
    }
    let unwell: Vec<&providers::live::Health> = plan
        .health
        .iter()
        .filter(|h| h.level != providers::live::Level::Ok)
        .collect();
    if !unwell.is_empty() {
        out.push_str(&format!(
            "> [!WARNING]\n> Health: {} resource(s) need attention:\n",
            unwell.len()
        ));
        for health in unwell.iter().take(20) {
            out.push_str(&format!(
                "> - `{}` {}: {}\n",
                health.address.replace('`', "'"),
                if health.level == providers::live::Level::Failed {
                    "**failed**"
                } else {
                    "warning"
                },
                health.message.replace('\n', " ")
            ));
        }
        if unwell.len() > 20 {
            out.push_str(&format!("> - … and {} more\n", unwell.len() - 20));
        }
        out.push('\n');
    }
    if !plan.refreshed {
        out.push_str(
            "> [!NOTE]\n> Planned against the recorded state only (no refresh): drift in the real systems \
             is not shown.\n\n",
        );
    }

    out.push_str("| type | create | update | replace | delete |\n|:---|---:|---:|---:|---:|\n");
    let mut total = [0usize; 4];
    for ((_, kind), members) in groups {
        let mut row = [0usize; 4];
        for &i in members {
            if let Some(column) = column(&plan.changes[i].action) {
                row[column] += 1;
                total[column] += 1;
            }
        }
        out.push_str("| ");
        push_code(&mut out, &kind.replace('|', "\\|"));
        for n in row {
            if n == 0 {
                out.push_str(" | ");
            } else {
                let _ = write!(out, " | {n}");
            }
        }
        out.push_str(" |\n");
    }
    let _ = writeln!(
        out,
        "| **total** | **{}** | **{}** | **{}** | **{}** |\n",
        total[0], total[1], total[2], total[3]
    );
    let _ = writeln!(
        out,
        "{} unchanged.\n",
        plural(s.no_op, "resource", "resources")
    );
    out
}

fn column(action: &str) -> Option<usize> {
    match action {
        "create" => Some(0),
        "update" => Some(1),
        "replace" => Some(2),
        "delete" => Some(3),
        _ => None,
    }
}

fn symbol(action: &str) -> &'static str {
    match action {
        "create" => "+",
        "update" => "~",
        "replace" => "-/+",
        "delete" => "-",
        _ => "?",
    }
}

fn group_heading((provider, kind): (&str, &str)) -> String {
    format!("#### `{kind}` ({provider})\n\n")
}

fn omitted_note(omitted: usize) -> String {
    let changes = if omitted == 1 {
        "resource change is"
    } else {
        "resource changes are"
    };
    format!(
        "> {omitted} more {changes} not shown to stay under GitHub's comment limit; run `ds plan` \
         locally or see the JSON plan for the full list.\n"
    )
}

/// A mermaid flowchart of the changes and the dependencies among them (arrows point from a resource to
/// what depends on it); nothing when no change depends on another, as the graph would only repeat the
/// list. Node ids are positions, so no address can break the syntax.
fn graph(plan: &PlanFile) -> String {
    let position: BTreeMap<&str, usize> = plan
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.as_str(), i))
        .collect();
    let mut edges = BTreeSet::new();
    for (i, change) in plan.changes.iter().enumerate() {
        for dependency in &change.dependencies {
            if let Some(&j) = position.get(dependency.as_str())
                && j != i
            {
                edges.insert((j, i));
            }
        }
    }
    if edges.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<details open><summary>Dependencies among the changes</summary>\n\n```mermaid\nflowchart LR\n",
    );
    for (i, change) in plan.changes.iter().enumerate() {
        let _ = write!(out, "  n{i}[\"{} ", symbol(&change.action));
        for c in change.address.chars() {
            match c {
                '"' => out.push_str("#quot;"),
                '<' => out.push_str("#lt;"),
                '>' => out.push_str("#gt;"),
                '#' => out.push_str("#35;"),
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
        out.push_str("\"]\n");
    }
    for (from, to) in edges {
        let _ = writeln!(out, "  n{from} --> n{to}");
    }
    out.push_str(
        "  classDef create fill:#dafbe1,stroke:#1a7f37,color:#0f5323\n  \
         classDef update fill:#fff8c5,stroke:#9a6700,color:#4d2d00\n  \
         classDef replace fill:#ffebe9,stroke:#cf222e,color:#82071e,stroke-width:2px\n  \
         classDef delete fill:#ffebe9,stroke:#cf222e,color:#82071e,stroke-dasharray:4 3\n",
    );
    for action in ["create", "update", "replace", "delete"] {
        let members: Vec<String> = plan
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.action == action)
            .map(|(i, _)| format!("n{i}"))
            .collect();
        if !members.is_empty() {
            let _ = writeln!(out, "  class {} {action}", members.join(","));
        }
    }
    out.push_str("```\n\n</details>\n\n");
    out
}

/// One change's collapsible block. The blank lines after `<summary>` and around the fence are what make
/// GitHub render Markdown inside `<details>`.
fn block(out: &mut String, change: &Change, refused: bool) {
    out.push_str("<details><summary><code>");
    push_html(out, symbol(&change.action));
    out.push(' ');
    push_html(out, &change.address);
    out.push_str("</code> ");
    push_html(out, &change.action);
    if change.protected && matches!(change.action.as_str(), "replace" | "delete") {
        out.push_str(if refused {
            " (protected, needs <code>--allow-destroy</code>)"
        } else {
            " (protected, destroy allowed)"
        });
    }
    if !change.reason.is_empty() {
        out.push_str(": ");
        push_inline(out, &change.reason);
    }
    out.push_str("</summary>\n\n");

    let mut body = Body::default();
    if change.action == "create" {
        if let Some(after) = &change.after {
            let after = redacted(after, &change.attributes);
            let mut pretty = String::new();
            push_pretty(&mut pretty, after.as_ref(), 0, 0);
            for line in pretty.lines() {
                body.line(line);
            }
        }
        body.finish(out, "json", "No attributes.");
    } else {
        let mut line = String::new();
        for attribute in &change.attributes {
            diff_lines(&mut body, &mut line, attribute);
        }
        if change.attributes.is_empty()
            && change.action == "delete"
            && let Some(Value::Object(before)) = &change.before
        {
            for (key, value) in before {
                line.clear();
                line.push_str("- ");
                push_plain(&mut line, key);
                line.push_str(": ");
                push_json(&mut line, value);
                body.line(&line);
            }
        }
        let empty = if change.action == "delete" {
            "No recorded attributes."
        } else {
            "No attribute differs."
        };
        body.finish(out, "diff", empty);
    }
    out.push_str("</details>\n\n");
}

/// `- path: before` and `+ path: after`, with `# forces replacement` on the new value.
fn diff_lines(body: &mut Body, line: &mut String, attribute: &AttributeDiff) {
    let mark = if attribute.forces_replace {
        "   # forces replacement"
    } else {
        ""
    };
    if attribute.sensitive {
        line.clear();
        line.push_str("- ");
        push_plain(line, &attribute.path);
        line.push_str(": (sensitive)");
        body.line(line);
        line.clear();
        line.push_str("+ ");
        push_plain(line, &attribute.path);
        line.push_str(": (sensitive)");
        line.push_str(mark);
        body.line(line);
        return;
    }
    if let Some(before) = &attribute.before {
        line.clear();
        line.push_str("- ");
        push_plain(line, &attribute.path);
        line.push_str(": ");
        push_json(line, before);
        if attribute.after.is_none() {
            line.push_str(mark);
        }
        body.line(line);
    }
    if let Some(after) = &attribute.after {
        line.clear();
        line.push_str("+ ");
        push_plain(line, &attribute.path);
        line.push_str(": ");
        push_json(line, after);
        line.push_str(mark);
        body.line(line);
    }
}

/// A fenced block's lines, cut at [`BLOCK_BODY`] bytes with a count of what was left out.
#[derive(Default)]
struct Body {
    text: String,
    lines: usize,
    cut: usize,
}

impl Body {
    fn line(&mut self, line: &str) {
        self.lines += 1;
        if self.text.len() + line.len().min(BLOCK_LINE) > BLOCK_BODY {
            self.cut += 1;
            return;
        }
        if line.len() > BLOCK_LINE {
            let mut end = BLOCK_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&line[..end]);
            let _ = write!(self.text, " … ({} more bytes)", line.len() - end);
        } else {
            self.text.push_str(line);
        }
        self.text.push('\n');
    }

    /// Writes the fenced block, or `empty` as a paragraph when there is nothing to show.
    fn finish(self, out: &mut String, language: &str, empty: &str) {
        if self.lines == 0 {
            out.push_str(empty);
            out.push_str("\n\n");
            return;
        }
        let _ = write!(out, "```{language}\n{}```\n\n", self.text);
        if self.cut > 0 {
            let _ = writeln!(
                out,
                "{} more lines are not shown; run `ds plan` locally or see the JSON plan.\n",
                self.cut
            );
        }
    }
}

/// The value with every sensitive attribute's value replaced by `"(sensitive)"` (borrowed when there are
/// none, the usual case).
fn redacted<'a>(value: &'a Value, attributes: &[AttributeDiff]) -> Cow<'a, Value> {
    if !attributes.iter().any(|a| a.sensitive) {
        return Cow::Borrowed(value);
    }
    let mut copy = value.clone();
    for attribute in attributes.iter().filter(|a| a.sensitive) {
        redact(&mut copy, &attribute.path);
    }
    Cow::Owned(copy)
}

/// Replaces the value at a dotted path; when the path goes deeper than the value does, the deepest part
/// that exists is hidden instead, so that a secret is never shown for want of an exact match.
fn redact(value: &mut Value, path: &str) {
    let keys: Vec<&str> = path.split('.').collect();
    let mut depth = 0;
    let mut at = &*value;
    for key in &keys {
        match at.get(key) {
            Some(next) => {
                at = next;
                depth += 1;
            }
            None => break,
        }
    }
    if depth == 0 {
        return;
    }
    let mut at = value;
    for key in &keys[..depth] {
        at = match at.get_mut(*key) {
            Some(next) => next,
            None => return,
        };
    }
    *at = Value::String("(sensitive)".into());
}

/// JSON laid out for reading: a value stays on one line when it fits in [`WIDTH`] columns, otherwise its
/// members go one per line (so each of a table's columns takes one line, not five).
fn push_pretty(out: &mut String, value: &Value, indent: usize, column: usize) {
    let compact = serde_json::to_string(value).unwrap_or_else(|_| "(unprintable)".into());
    if column + compact.len() <= WIDTH {
        out.push_str(&compact);
        return;
    }
    match value {
        Value::Object(members) if !members.is_empty() => {
            out.push_str("{\n");
            for (n, (key, member)) in members.iter().enumerate() {
                let start = out.len();
                push_indent(out, indent + 2);
                push_json(out, &Value::String(key.clone()));
                out.push_str(": ");
                let column = out.len() - start;
                push_pretty(out, member, indent + 2, column);
                if n + 1 < members.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            push_indent(out, indent);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (n, item) in items.iter().enumerate() {
                push_indent(out, indent + 2);
                push_pretty(out, item, indent + 2, indent + 2);
                if n + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            push_indent(out, indent);
            out.push(']');
        }
        _ => out.push_str(&compact),
    }
}

fn push_indent(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

fn push_json(out: &mut String, value: &Value) {
    match serde_json::to_string(value) {
        Ok(json) => out.push_str(&json),
        Err(_) => out.push_str("(unprintable)"),
    }
}

/// Text inside a fenced block: a control character (a newline) could end the line, or the fence.
fn push_plain(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

/// Text escaped for HTML (inside `<summary>` and `<code>`, where Markdown is not read).
fn push_html(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// A reason as HTML: escaped, with `backticked` spans as `<code>` (Markdown is not read inside the
/// `<summary>` line).
fn push_inline(out: &mut String, text: &str) {
    if !text.matches('`').count().is_multiple_of(2) {
        push_html(out, text);
        return;
    }
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            push_html(out, part);
            out.push_str("</code>");
        } else {
            push_html(out, part);
        }
    }
}

/// Inline code, with a longer fence when the text holds a backtick.
fn push_code(out: &mut String, text: &str) {
    if text.contains('`') {
        out.push_str("`` ");
        out.push_str(text);
        out.push_str(" ``");
    } else {
        out.push('`');
        out.push_str(text);
        out.push('`');
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {

    use planner::planfile::{AttributeDiff, Change, PlanFile};
    use serde_json::{Value, json};

    use super::render;

    const LIMIT: usize = 60_000;

    fn diff(path: &str, before: Option<Value>, after: Option<Value>) -> AttributeDiff {
        AttributeDiff {
            path: path.into(),
            before,
            after,
            forces_replace: false,
            sensitive: false,
        }
    }

    fn change(action: &str, address: &str, attributes: Vec<AttributeDiff>) -> Change {
        let kind = address.split('.').next().unwrap();
        let provider = kind.split('_').next().unwrap();
        let reason = match action {
            "create" => "not in the state",
            "delete" => "no longer in the model",
            "replace" => "cannot change in place",
            _ => "changed in the model",
        };
        Change {
            address: address.into(),
            kind: kind.into(),
            provider: provider.into(),
            action: action.into(),
            reason: reason.into(),
            protected: kind == "postgres_table" || kind == "s3_bucket",
            dependencies: vec![],
            attributes,
            before: (action != "create").then(|| json!({})),
            after: (action != "delete").then(|| json!({})),
        }
    }

    use super::super::fixtures::plan_of;

    fn sample() -> PlanFile {
        let mut forced = diff(
            "columns.id.type",
            Some(json!("integer")),
            Some(json!("text")),
        );
        forced.forces_replace = true;
        let mut create = change(
            "create",
            "postgres_table.zero_live.crm_db__customers__merge",
            vec![],
        );
        create.after = Some(json!({
            "name": "crm_db__customers__merge",
            "columns": [
                {"name": "id", "type": "integer", "nullable": false},
                {"name": "email", "type": "varchar(320)", "nullable": true},
            ],
        }));
        create.dependencies = vec!["postgres_schema.zero_live".into()];
        let mut view = change(
            "update",
            "postgres_view.ws_reports.live__crm_db__customers",
            vec![diff("owner", Some(json!("a")), Some(json!("b")))],
        );
        view.dependencies = vec!["postgres_table.zero_live.crm_db__customers__merge".into()];
        plan_of(
            vec![
                create,
                change(
                    "update",
                    "postgres_table.zero_live.crm_db__orders__merge",
                    vec![
                        diff(
                            "columns.amount.type",
                            Some(json!("decimal(10,2)")),
                            Some(json!("decimal(12,2)")),
                        ),
                        diff(
                            "columns.note",
                            None,
                            Some(json!({"name": "note", "nullable": true, "type": "text"})),
                        ),
                    ],
                ),
                change(
                    "replace",
                    "postgres_table.zero_live.x__y__merge",
                    vec![forced],
                ),
                view,
                change(
                    "delete",
                    "s3_bucket.archive",
                    vec![diff("versioning", Some(json!(true)), None)],
                ),
                change("delete", "scheduler_job.zero_live.crm_db", vec![]),
            ],
            12,
            &["postgres_table.zero_live.x__y__merge"],
        )
    }

    /// What GitHub needs to render Markdown inside `<details>`: a blank line after each summary, fences
    /// that pair up and start on a blank line, every `<details>` closed.
    fn assert_renders_on_github(markdown: &str) {
        let lines: Vec<&str> = markdown.lines().collect();
        let mut in_fence = false;
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("```") {
                if !in_fence && line.len() > 3 {
                    assert!(
                        i > 0 && lines[i - 1].is_empty(),
                        "no blank line before {line}"
                    );
                }
                in_fence = !in_fence;
                continue;
            }
            if in_fence {
                continue;
            }
            if line.starts_with("<details") {
                assert!(line.ends_with("</summary>"), "{line}");
                assert_eq!(lines.get(i + 1), Some(&""), "no blank line after {line}");
            }
        }
        assert!(!in_fence, "a fence is left open");
        assert_eq!(
            markdown.matches("<details").count(),
            markdown.matches("</details>").count()
        );
    }

    #[test]
    fn title_banners_and_table_come_first() {
        let markdown = render(&sample(), LIMIT);
        assert!(markdown.starts_with(
            "### ds plan: 1 to create, 2 to update, 1 to replace, 2 to delete\n\n\
             > [!CAUTION]\n\
             > This plan destroys 3 resources (1 replaced, 2 deleted), 2 of them protected (they hold \
             data):\n\
             > - `postgres_table.zero_live.x__y__merge` (replace, protected)\n\
             > - `s3_bucket.archive` (delete, protected)\n\
             > - `scheduler_job.zero_live.crm_db` (delete)\n\n\
             > [!WARNING]\n\
             > `ds apply` refuses this plan: it would destroy data in 1 protected resource. Re-run with \
             `--allow-destroy ADDR` for each one you mean to destroy:\n\
             > - `postgres_table.zero_live.x__y__merge`\n\n\
             | type | create | update | replace | delete |\n\
             |:---|---:|---:|---:|---:|\n\
             | `postgres_table` | 1 | 1 | 1 |  |\n\
             | `postgres_view` |  | 1 |  |  |\n\
             | `s3_bucket` |  |  |  | 1 |\n\
             | `scheduler_job` |  |  |  | 1 |\n\
             | **total** | **1** | **2** | **1** | **2** |\n\n\
             12 resources unchanged.\n\n"
        ));
        assert!(!markdown.contains("[!NOTE]"));
        assert!(!markdown.contains("more resource change"));
        assert_renders_on_github(&markdown);
    }

    #[test]
    fn each_change_is_a_collapsible_block() {
        let markdown = render(&sample(), LIMIT);
        assert!(markdown.contains(
            "#### `postgres_table` (postgres)\n\n\
             <details><summary><code>+ postgres_table.zero_live.crm_db__customers__merge</code> create: \
             not in the state</summary>\n\n\
             ```json\n{\n  \"columns\": [\n    {\"name\":\"id\",\"nullable\":false,\"type\":\"integer\"},\n    \
             {\"name\":\"email\",\"nullable\":true,\"type\":\"varchar(320)\"}\n  ],\n  \
             \"name\": \"crm_db__customers__merge\"\n}\n```\n\n</details>\n\n"
        ));
        assert!(markdown.contains(
            "<details><summary><code>~ postgres_table.zero_live.crm_db__orders__merge</code> update: \
             changed in the model</summary>\n\n\
             ```diff\n\
             - columns.amount.type: \"decimal(10,2)\"\n\
             + columns.amount.type: \"decimal(12,2)\"\n\
             + columns.note: {\"name\":\"note\",\"nullable\":true,\"type\":\"text\"}\n\
             ```\n\n</details>\n\n"
        ));
        assert!(markdown.contains(
            "<details><summary><code>-/+ postgres_table.zero_live.x__y__merge</code> replace (protected, \
             needs <code>--allow-destroy</code>): cannot change in place</summary>\n\n\
             ```diff\n\
             - columns.id.type: \"integer\"\n\
             + columns.id.type: \"text\"   # forces replacement\n\
             ```\n\n</details>\n\n"
        ));
        assert!(markdown.contains(
            "<details><summary><code>- s3_bucket.archive</code> delete (protected, destroy allowed): no \
             longer in the model</summary>\n\n```diff\n- versioning: true\n```\n\n</details>\n\n"
        ));
        assert!(markdown.contains(
            "<code>- scheduler_job.zero_live.crm_db</code> delete: no longer in the model</summary>\n\n\
             No recorded attributes.\n\n</details>\n\n"
        ));
        // Grouped by type, in the table's order.
        let at = |s: &str| markdown.find(s).unwrap();
        assert!(at("#### `postgres_table`") < at("#### `postgres_view`"));
        assert!(at("#### `postgres_view`") < at("#### `s3_bucket`"));
        assert!(at("crm_db__customers__merge</code>") < at("crm_db__orders__merge</code>"));
    }

    #[test]
    fn reasons_and_addresses_are_safe_html() {
        let mut plan = sample();
        plan.changes[2].reason = "`postgres_table.a` is replaced <b>&</b>".into();
        let markdown = render(&plan, LIMIT);
        assert!(markdown.contains(
            ": <code>postgres_table.a</code> is replaced &lt;b&gt;&amp;&lt;/b&gt;</summary>"
        ));
        plan.changes[2].reason = "one ` alone".into();
        assert!(render(&plan, LIMIT).contains(": one ` alone</summary>"));
    }

    #[test]
    fn small_plans_get_a_dependency_graph() {
        let markdown = render(&sample(), LIMIT);
        let graph = "```mermaid\nflowchart LR\n  \
                     n0[\"+ postgres_table.zero_live.crm_db__customers__merge\"]\n  \
                     n1[\"~ postgres_table.zero_live.crm_db__orders__merge\"]\n  \
                     n2[\"-/+ postgres_table.zero_live.x__y__merge\"]\n  \
                     n3[\"~ postgres_view.ws_reports.live__crm_db__customers\"]\n  \
                     n4[\"- s3_bucket.archive\"]\n  \
                     n5[\"- scheduler_job.zero_live.crm_db\"]\n  \
                     n0 --> n3\n";
        assert!(markdown.contains(graph), "{markdown}");
        // The schema is unchanged: no node, no edge.
        assert!(!markdown.contains("postgres_schema"));
        assert!(markdown.contains("  class n0 create\n  class n1,n3 update\n  class n2 replace\n"));
        assert!(markdown.contains("  class n4,n5 delete\n```\n\n</details>\n\n"));
        assert!(
            markdown.find("```mermaid").unwrap() < markdown.find("#### `postgres_table`").unwrap()
        );

        let mut odd = sample();
        odd.changes[0].address = "postgres_table.\"x\"<y>#z".into();
        odd.changes[3].dependencies = vec![odd.changes[0].address.clone()];
        assert!(
            render(&odd, LIMIT).contains("n0[\"+ postgres_table.#quot;x#quot;#lt;y#gt;#35;z\"]")
        );

        let mut apart = sample();
        apart.changes[3].dependencies.clear();
        assert!(!render(&apart, LIMIT).contains("mermaid"));

        let many: Vec<Change> = (0..31)
            .map(|i| {
                let mut c = change("create", &format!("postgres_view.ws.v{i:02}"), vec![]);
                c.dependencies = vec!["postgres_view.ws.v00".into()];
                c
            })
            .collect();
        assert!(render(&plan_of(many[..30].to_vec(), 0, &[]), LIMIT).contains("n0 --> n29\n"));
        assert!(!render(&plan_of(many, 0, &[]), LIMIT).contains("mermaid"));
    }

    #[test]
    fn sensitive_values_are_never_shown() {
        let mut secret = diff("config.password", None, None);
        secret.sensitive = true;
        let mut update = change("update", "debezium_source.crm_db", vec![secret.clone()]);
        update.after = Some(json!({"config": {"password": "hunter2"}}));
        let mut create = change("create", "debezium_source.erp_db", vec![secret]);
        create.after =
            Some(json!({"name": "erp_db", "config": {"password": "hunter2", "port": 5432}}));
        let markdown = render(&plan_of(vec![update, create], 0, &[]), LIMIT);
        assert!(!markdown.contains("hunter2"));
        assert!(markdown.contains(
            "```diff\n- config.password: (sensitive)\n+ config.password: (sensitive)\n```"
        ));
        assert!(markdown.contains(
            "```json\n{\"config\":{\"password\":\"(sensitive)\",\"port\":5432},\"name\":\"erp_db\"}\n```"
        ));
    }

    #[test]
    fn no_changes_is_one_sentence() {
        let plan = plan_of(vec![], 12, &[]);
        assert_eq!(
            render(&plan, LIMIT),
            "### ds plan: no changes\n\nThe real systems match the model (12 resources).\n"
        );
        let mut recorded = plan;
        recorded.refreshed = false;
        assert_eq!(
            render(&recorded, LIMIT),
            "### ds plan: no changes\n\nThe recorded state matches the model (12 resources); the real \
             systems were not read (no refresh), so drift is not shown.\n"
        );
    }

    #[test]
    fn without_refresh_a_note_follows_the_banners() {
        let mut plan = sample();
        plan.refreshed = false;
        let markdown = render(&plan, LIMIT);
        let note = markdown
            .find("> [!NOTE]\n> Planned against the recorded state only")
            .unwrap();
        assert!(markdown.find("> [!WARNING]").unwrap() < note);
        assert!(note < markdown.find("| type |").unwrap());
    }

    #[test]
    fn one_huge_resource_is_cut_not_dropped() {
        let columns: Vec<Value> = (0..2_000)
            .map(|i| json!({"name": format!("column_{i}"), "type": "text", "nullable": true}))
            .collect();
        let mut create = change("create", "postgres_table.zero_live.wide", vec![]);
        create.after = Some(json!({ "columns": columns, "definition": "x".repeat(5_000) }));
        let small = change("create", "postgres_view.ws.small", vec![]);
        let markdown = render(&plan_of(vec![create, small], 0, &[]), LIMIT);
        assert!(markdown.len() < 10_000);
        assert!(markdown.contains("more lines are not shown; run `ds plan` locally"));
        assert!(markdown.contains("<code>+ postgres_view.ws.small</code>"));
        assert!(!markdown.contains("more resource change"));
        assert_renders_on_github(&markdown);
    }

    /// A first plan of a large model (`creates` creates over five types), with 50 refused deletes.
    fn huge(creates: usize) -> PlanFile {
        let kinds = [
            "postgres_table",
            "postgres_view",
            "postgres_grant",
            "debezium_sink",
            "scheduler_job",
        ];
        let mut changes: Vec<Change> = (0..creates)
            .map(|i| {
                let mut c = change(
                    "create",
                    &format!("{}.zero_live.store__dataset_{i:06}", kinds[i % kinds.len()]),
                    vec![],
                );
                c.after = Some(json!({
                    "name": format!("store__dataset_{i:06}"),
                    "columns": [{"name": "id", "type": "integer", "nullable": false}],
                }));
                c
            })
            .collect();
        for i in 0..50 {
            changes.push(change(
                "delete",
                &format!("s3_bucket.old_{i:02}"),
                vec![diff("name", Some(json!(format!("old_{i:02}"))), None)],
            ));
        }
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        let refused: Vec<String> = (0..50).map(|i| format!("s3_bucket.old_{i:02}")).collect();
        let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
        plan_of(changes, 0, &refused)
    }

    #[test]
    fn a_hundred_thousand_changes_stay_under_the_limit() {
        let plan = huge(100_000);
        // How fast is for the benchmarks, not a timed test (a loaded CI machine made this one flaky).
        let markdown = render(&plan, LIMIT);
        assert!(markdown.len() <= LIMIT, "{} bytes", markdown.len());
        // The table is complete.
        for row in [
            "| `debezium_sink` | 20000 |  |  |  |\n",
            "| `postgres_grant` | 20000 |  |  |  |\n",
            "| `postgres_table` | 20000 |  |  |  |\n",
            "| `postgres_view` | 20000 |  |  |  |\n",
            "| `s3_bucket` |  |  |  | 50 |\n",
            "| `scheduler_job` | 20000 |  |  |  |\n",
            "| **total** | **100000** | **0** | **0** | **50** |\n",
        ] {
            assert!(markdown.contains(row), "{row}");
        }
        // Banners list 20 addresses and count the rest.
        assert!(markdown.contains("> - … and 30 more (see the table and the changes below)\n"));
        assert!(markdown.contains("> - … and 30 more (run `ds plan` locally for the full list)\n"));
        // Destroys get the room before creates; the note counts what is left out.
        let shown = markdown.matches("<details><summary>").count();
        assert!(markdown.matches("<code>- s3_bucket.old_").count() == 50);
        assert!(shown > 50, "{shown}");
        assert!(markdown.ends_with(&format!(
            "> {} more resource changes are not shown to stay under GitHub's comment limit; run `ds plan` \
             locally or see the JSON plan for the full list.\n",
            100_050 - shown
        )));
        assert_renders_on_github(&markdown);
    }

    #[test]
    fn never_over_the_limit() {
        let plan = huge(5_000);
        for limit in [0, 1, 100, 2_000, 5_000, 20_000] {
            let markdown = render(&plan, limit);
            assert!(markdown.len() <= limit, "{limit}: {}", markdown.len());
        }
        // Tight, but room for the head: the banners drop their lists, the table stays whole.
        let markdown = render(&plan, 1_200);
        assert!(markdown.len() <= 1_200);
        assert!(markdown.contains("| **total** | **5000** | **0** | **0** | **50** |\n"));
        assert!(markdown.contains("more resource changes are not shown"));
        // Every limit, including cuts inside a multi-byte character (`…`, `→`).
        let mut small = huge(5_000);
        small.changes.truncate(30);
        for limit in 0..1_500 {
            assert!(render(&small, limit).len() <= limit);
        }
    }
}
