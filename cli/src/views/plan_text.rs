//! The plan as text, for a terminal or a log: what `ds plan` and `ds show` print by default.
//!
//! Rendered from the plan document ([`PlanFile`]) alone, grouped by provider and resource type like
//! Terraform's plan. Creates show their address and reason only (a first plan of a large model creates
//! hundreds of thousands of resources); updates and replaces list every attribute that differs; deletes show
//! their address. ANSI colour only when asked. Secret-derived values are never printed, only `(sensitive)`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use planner::planfile::{AttributeDiff, Change, PlanFile, Summary};
use providers::live::Level;
use serde_json::Value;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// ANSI styles, or nothing when colour is off.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn on(self, style: &'static str) -> &'static str {
        if self.0 { style } else { "" }
    }

    fn off(self) -> &'static str {
        if self.0 { RESET } else { "" }
    }

    /// The colour of an action's or an attribute's symbol.
    fn of_symbol(self, symbol: &str) -> &'static str {
        self.on(match symbol {
            "+" => GREEN,
            "~" => YELLOW,
            _ => RED,
        })
    }
}

/// Renders the plan as text; `color` adds ANSI colours (the caller decides: a terminal, no `NO_COLOR`).
pub(crate) fn render(plan: &PlanFile, color: bool) -> String {
    let paint = Paint(color);
    // Roughly two lines per change; growing the string a few times more is harmless.
    let mut out = String::with_capacity(256 + plan.changes.len() * 120);
    if !plan.refreshed {
        let _ = writeln!(
            out,
            "{}Note:{} planned against the recorded state only (no refresh): drift in the real systems is \
             not shown.\n",
            paint.on(BOLD),
            paint.off()
        );
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(
            out,
            "{}Drift:{} {} changed outside ds since the last apply:",
            paint.on(BOLD),
            paint.off(),
            plural(plan.drift.len(), "resource", "resources")
        );
        for drift in &plan.drift {
            let symbol = if drift.what == "deleted" { "-" } else { "~" };
            out.push_str("  ");
            out.push_str(paint.of_symbol(symbol));
            out.push_str(symbol);
            out.push_str(paint.off());
            out.push(' ');
            push_clean(&mut out, &drift.address);
            out.push_str(if drift.what == "deleted" {
                "   (deleted outside ds)\n"
            } else {
                "   (changed outside ds)\n"
            });
            for attribute in &drift.attributes {
                push_attribute(&mut out, attribute, paint);
            }
        }
        out.push('\n');
    }
    if !plan.health.is_empty() {
        let _ = writeln!(out, "{}Health:{}", paint.on(BOLD), paint.off());
        for health in &plan.health {
            let (word, colour) = match health.level {
                Level::Ok => ("ok", GREEN),
                Level::Warning => ("warning", YELLOW),
                Level::Failed => ("FAILED", RED),
            };
            out.push_str("  ");
            out.push_str(paint.on(colour));
            out.push_str(word);
            out.push_str(paint.off());
            out.push(' ');
            push_clean(&mut out, &health.address);
            out.push_str(": ");
            push_clean(&mut out, &health.message);
            out.push('\n');
        }
        out.push('\n');
    }
    if plan.has_changes() {
        let refused: BTreeSet<&str> = plan.refused.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{}ds will perform these actions:{}",
            paint.on(BOLD),
            paint.off()
        );
        for ((provider, kind), changes) in plan.grouped() {
            out.push('\n');
            out.push_str(paint.on(BOLD));
            out.push_str("# ");
            push_clean(&mut out, kind);
            out.push_str(" (");
            push_clean(&mut out, provider);
            out.push(')');
            out.push_str(paint.off());
            out.push('\n');
            for change in changes {
                push_change(
                    &mut out,
                    change,
                    refused.contains(change.address.as_str()),
                    paint,
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{}Plan:{} {} ({} unchanged).",
            paint.on(BOLD),
            paint.off(),
            counts(&plan.summary),
            plan.summary.no_op
        );
    } else {
        let subject = if plan.refreshed {
            "The real systems match"
        } else {
            "The recorded state matches"
        };
        let _ = writeln!(
            out,
            "{}No changes.{} {subject} the model ({}).",
            paint.on(BOLD),
            paint.off(),
            plural(plan.summary.no_op, "resource", "resources")
        );
    }
    if !plan.refused.is_empty() {
        let _ = writeln!(
            out,
            "\n{}{}Error:{} this plan would destroy data in {}:",
            paint.on(BOLD),
            paint.on(RED),
            paint.off(),
            plural(
                plan.refused.len(),
                "protected resource",
                "protected resources"
            )
        );
        for address in &plan.refused {
            out.push_str("  - ");
            push_clean(&mut out, address);
            out.push('\n');
        }
        out.push_str("Re-run with `--allow-destroy ADDR` for each one you mean to destroy.\n");
    }
    out
}

/// `3 to create, 1 to update, 1 to replace, 1 to delete`: every action, zeros included, so that the line
/// has one shape whatever the plan.
fn counts(summary: &Summary) -> String {
    format!(
        "{} to create, {} to update, {} to replace, {} to delete",
        summary.create, summary.update, summary.replace, summary.delete
    )
}

/// `+`, `~`, `-/+` or `-`; unknown actions show as `?` rather than failing the whole plan.
fn symbol(action: &str) -> &'static str {
    match action {
        "create" => "+",
        "update" => "~",
        "replace" => "-/+",
        "delete" => "-",
        _ => "?",
    }
}

fn destroys(action: &str) -> bool {
    matches!(action, "replace" | "delete")
}

fn push_change(out: &mut String, change: &Change, refused: bool, paint: Paint) {
    let symbol = symbol(&change.action);
    out.push_str("  ");
    out.push_str(paint.of_symbol(symbol));
    out.push_str(symbol);
    out.push_str(paint.off());
    out.push(' ');
    push_clean(out, &change.address);
    if change.protected && destroys(&change.action) {
        out.push_str("   ");
        out.push_str(paint.on(RED));
        out.push_str(if refused {
            "(protected: holds data; needs --allow-destroy)"
        } else {
            "(protected: holds data; destroy allowed)"
        });
        out.push_str(paint.off());
    }
    out.push('\n');
    if !change.reason.is_empty() {
        out.push_str("      reason: ");
        push_clean(out, &change.reason);
        out.push('\n');
    }
    if matches!(change.action.as_str(), "update" | "replace") {
        for attribute in &change.attributes {
            push_attribute(out, attribute, paint);
        }
    }
}

/// `~ path: before → after`, `+ path: after`, `- path: before`, `! ...   (forces replacement)`.
fn push_attribute(out: &mut String, attribute: &AttributeDiff, paint: Paint) {
    let symbol = if attribute.forces_replace {
        "!"
    } else if attribute.sensitive {
        "~"
    } else {
        match (&attribute.before, &attribute.after) {
            (None, Some(_)) => "+",
            (Some(_), None) => "-",
            _ => "~",
        }
    };
    out.push_str("      ");
    out.push_str(paint.of_symbol(symbol));
    out.push_str(symbol);
    out.push_str(paint.off());
    out.push(' ');
    push_clean(out, &attribute.path);
    out.push_str(": ");
    if attribute.sensitive {
        out.push_str("(sensitive)");
    } else {
        match (&attribute.before, &attribute.after) {
            (Some(before), Some(after)) => {
                push_value(out, before);
                out.push_str(" → ");
                push_value(out, after);
            }
            (Some(value), None) | (None, Some(value)) => push_value(out, value),
            (None, None) => out.push_str("(none)"),
        }
    }
    if attribute.forces_replace {
        out.push_str("   ");
        out.push_str(paint.on(RED));
        out.push_str("(forces replacement)");
        out.push_str(paint.off());
    }
    out.push('\n');
}

/// Compact JSON: strings quoted, control characters escaped (so a value cannot break the line or send
/// escape sequences to the terminal).
fn push_value(out: &mut String, value: &Value) {
    match serde_json::to_string(value) {
        Ok(json) => out.push_str(&json),
        Err(_) => out.push_str("(unprintable)"),
    }
}

/// Pushes text from the document (addresses, paths, reasons) with control characters escaped: a plan file
/// is data, and `ds show` must not let it move the cursor or recolour the terminal.
fn push_clean(out: &mut String, text: &str) {
    if !text.chars().any(char::is_control) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
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

    fn diff(path: &str, before: Option<Value>, after: Option<Value>) -> AttributeDiff {
        AttributeDiff {
            path: path.into(),
            before,
            after,
            forces_replace: false,
            sensitive: false,
        }
    }

    fn change(action: &str, address: &str, reason: &str, attributes: Vec<AttributeDiff>) -> Change {
        let kind = address.split('.').next().unwrap();
        let provider = kind.split('_').next().unwrap();
        Change {
            address: address.into(),
            kind: kind.into(),
            provider: provider.into(),
            action: action.into(),
            reason: reason.into(),
            protected: kind == "postgres_table",
            dependencies: vec![],
            attributes,
            before: (action != "create").then(|| json!({})),
            after: (action != "delete").then(|| json!({})),
        }
    }

    fn plan_of(changes: Vec<Change>, no_op: usize, refreshed: bool, refused: &[&str]) -> PlanFile {
        let mut plan = super::super::fixtures::plan_of(changes, no_op, refused);
        plan.refreshed = refreshed;
        plan
    }

    fn sample(refused: &[&str]) -> PlanFile {
        let mut forced = diff(
            "columns.id.type",
            Some(json!("integer")),
            Some(json!("text")),
        );
        forced.forces_replace = true;
        let mut secret = diff("config.password", None, None);
        secret.sensitive = true;
        plan_of(
            vec![
                change(
                    "create",
                    "postgres_table.zero_live.crm_db__customers__merge",
                    "not in the state",
                    vec![diff("name", None, Some(json!("crm_db__customers__merge")))],
                ),
                change(
                    "update",
                    "postgres_table.zero_live.crm_db__orders__merge",
                    "changed in the model",
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
                        diff("comment", Some(json!("old")), None),
                    ],
                ),
                change(
                    "replace",
                    "postgres_table.zero_live.x__y__merge",
                    "cannot change in place: columns.id.type",
                    vec![forced],
                ),
                change(
                    "delete",
                    "postgres_view.ws_reports.live__crm_db__customers",
                    "no longer in the model",
                    vec![diff("name", Some(json!("live__crm_db__customers")), None)],
                ),
                change(
                    "update",
                    "debezium_source.crm_db",
                    "changed in the model",
                    vec![secret],
                ),
            ],
            12,
            true,
            refused,
        )
    }

    #[test]
    fn renders_a_plan_grouped_by_provider_then_type() {
        let text = render(&sample(&[]), false);
        let expected = r#"ds will perform these actions:

# debezium_source (debezium)
  ~ debezium_source.crm_db
      reason: changed in the model
      ~ config.password: (sensitive)

# postgres_table (postgres)
  + postgres_table.zero_live.crm_db__customers__merge
      reason: not in the state
  ~ postgres_table.zero_live.crm_db__orders__merge
      reason: changed in the model
      ~ columns.amount.type: "decimal(10,2)" → "decimal(12,2)"
      + columns.note: {"name":"note","nullable":true,"type":"text"}
      - comment: "old"
  -/+ postgres_table.zero_live.x__y__merge   (protected: holds data; destroy allowed)
      reason: cannot change in place: columns.id.type
      ! columns.id.type: "integer" → "text"   (forces replacement)

# postgres_view (postgres)
  - postgres_view.ws_reports.live__crm_db__customers
      reason: no longer in the model

Plan: 1 to create, 2 to update, 1 to replace, 1 to delete (12 unchanged).
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn creates_and_deletes_do_not_list_attributes() {
        let text = render(&sample(&[]), false);
        assert!(!text.contains("crm_db__customers__merge\"")); // the create's `name`
        assert!(!text.contains("\"live__crm_db__customers\"")); // the delete's `name`
    }

    #[test]
    fn refused_destroys_end_the_output_with_an_error() {
        let text = render(&sample(&["postgres_table.zero_live.x__y__merge"]), false);
        assert!(text.contains(
            "-/+ postgres_table.zero_live.x__y__merge   (protected: holds data; needs --allow-destroy)"
        ));
        assert!(text.ends_with(
            "Plan: 1 to create, 2 to update, 1 to replace, 1 to delete (12 unchanged).\n\n\
             Error: this plan would destroy data in 1 protected resource:\n  \
             - postgres_table.zero_live.x__y__merge\n\
             Re-run with `--allow-destroy ADDR` for each one you mean to destroy.\n"
        ));
        let two = render(&sample(&["a.b", "c.d"]), false);
        assert!(two.contains("destroy data in 2 protected resources:\n  - a.b\n  - c.d\n"));
    }

    #[test]
    fn without_refresh_a_note_comes_first() {
        let mut plan = sample(&[]);
        plan.refreshed = false;
        let text = render(&plan, false);
        assert!(text.starts_with(
            "Note: planned against the recorded state only (no refresh): drift in the real systems is \
             not shown.\n\nds will perform these actions:\n"
        ));
    }

    #[test]
    fn no_changes_says_what_was_compared() {
        let refreshed = render(&plan_of(vec![], 12, true, &[]), false);
        assert_eq!(
            refreshed,
            "No changes. The real systems match the model (12 resources).\n"
        );
        let recorded = render(&plan_of(vec![], 1, false, &[]), false);
        assert!(
            recorded
                .ends_with("\n\nNo changes. The recorded state matches the model (1 resource).\n")
        );
        assert!(recorded.starts_with("Note: planned against the recorded state only"));
    }

    #[test]
    fn colour_only_when_asked() {
        let plain = render(&sample(&["postgres_table.zero_live.x__y__merge"]), false);
        assert!(!plain.contains('\x1b'));
        let coloured = render(&sample(&["postgres_table.zero_live.x__y__merge"]), true);
        assert!(
            coloured.contains("\x1b[32m+\x1b[0m postgres_table.zero_live.crm_db__customers__merge")
        );
        assert!(
            coloured.contains("\x1b[33m~\x1b[0m postgres_table.zero_live.crm_db__orders__merge")
        );
        assert!(coloured.contains("\x1b[31m-/+\x1b[0m postgres_table.zero_live.x__y__merge"));
        assert!(coloured.contains("\x1b[31m-\x1b[0m postgres_view.ws_reports"));
        assert!(coloured.contains("\x1b[1m# postgres_table (postgres)\x1b[0m"));
        assert!(coloured.contains("\x1b[1m\x1b[31mError:\x1b[0m"));
        // Without the escape codes, the two are the same text.
        let stripped = coloured
            .replace("\x1b[0m", "")
            .replace("\x1b[1m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn text_from_the_document_cannot_send_escape_sequences() {
        let mut plan = sample(&[]);
        plan.changes[0].address = "postgres_table.evil\x1b[2J".into();
        plan.changes[1].attributes[0].path = "columns\n.x".into();
        plan.changes[1].attributes[0].after = Some(json!("\x1b[31m"));
        let text = render(&plan, false);
        assert!(!text.contains('\x1b'));
        assert!(text.contains("postgres_table.evil\\u{1b}[2J"));
        assert!(text.contains("columns\\n.x: \"decimal(10,2)\" → \"\\u001b[31m\""));
    }

    #[test]
    fn a_hundred_thousand_creates_render_in_full() {
        let changes: Vec<Change> = (0..100_000)
            .map(|i| {
                change(
                    "create",
                    &format!("postgres_table.zero_live.store__dataset_{i:06}__merge"),
                    "not in the state",
                    vec![],
                )
            })
            .collect();
        let plan = plan_of(changes, 0, false, &[]);
        // How fast is for the benchmarks (docs/benchmarks.md, `ds plan` of the 10k model), not a timed test.
        let text = render(&plan, true);
        assert!(text.ends_with(
            "\x1b[1mPlan:\x1b[0m 100000 to create, 0 to update, 0 to replace, 0 to delete (0 unchanged).\n"
        ));
        // The note, the heading, the group's heading, two lines per create, the summary; blank lines between.
        assert_eq!(text.lines().count(), 2 + 1 + 2 + 2 * 100_000 + 2);
    }

    #[test]
    fn drift_is_shown_before_the_actions() {
        let mut plan = plan_of(vec![], 3, true, &[]);
        plan.drift = vec![
            planner::planfile::DriftEntry {
                address: "postgres_role.ws_a_reader".into(),
                kind: "postgres_role".into(),
                what: "deleted".into(),
                attributes: vec![],
            },
            planner::planfile::DriftEntry {
                address: "postgres_view.ws_a.v".into(),
                kind: "postgres_view".into(),
                what: "changed".into(),
                attributes: vec![AttributeDiff {
                    path: "definition".into(),
                    before: Some(Value::String("SELECT 1".into())),
                    after: Some(Value::String("SELECT 2".into())),
                    forces_replace: false,
                    sensitive: false,
                }],
            },
        ];
        assert_eq!(
            render(&plan, false),
            "Drift: 2 resources changed outside ds since the last apply:\n  \
             - postgres_role.ws_a_reader   (deleted outside ds)\n  \
             ~ postgres_view.ws_a.v   (changed outside ds)\n      \
             ~ definition: \"SELECT 1\" → \"SELECT 2\"\n\n\
             No changes. The real systems match the model (3 resources).\n"
        );
    }
}
