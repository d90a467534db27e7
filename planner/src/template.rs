//! Transformer SQL templates: the `{{ input "<dsg>" "<store>" "<dataset>" }}` placeholders.

use std::ops::Range;

/// One `{{ input "<dsg>" "<store>" "<dataset>" }}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The dataset group of the transformer's workspace.
    pub group: String,
    /// The store of a sink of that group.
    pub store: String,
    /// The dataset of that sink.
    pub dataset: String,
}

/// A placeholder found in SQL, parsed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// Byte range of `{{ ... }}` in the SQL text.
    pub range: Range<usize>,
    /// The parsed input, or why it is not one.
    pub input: Result<Input, String>,
}

/// Finds every `{{ ... }}` in `sql`, in order.
pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = sql[from..].find("{{").map(|i| from + i) {
        let Some(close) = sql[open + 2..].find("}}").map(|i| open + 2 + i) else {
            out.push(Placeholder {
                range: open..sql.len(),
                input: Err("`{{` is never closed with `}}`".to_string()),
            });
            break;
        };
        out.push(Placeholder {
            range: open..close + 2,
            input: parse_input(&sql[open + 2..close]),
        });
        from = close + 2;
    }
    out
}

fn parse_input(inner: &str) -> Result<Input, String> {
    let shape = "write `{{ input \"<dataset group>\" \"<store>\" \"<dataset>\" }}`";
    let inner = inner.trim();
    let Some(rest) = inner.strip_prefix("input") else {
        return Err(format!(
            "`{{{{ {inner} }}}}` is not an input reference: {shape}"
        ));
    };
    let mut args = Vec::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let Some(after_quote) = rest.strip_prefix('"') else {
            return Err(format!(
                "the arguments of `input` must be quoted names: {shape}"
            ));
        };
        let Some(end) = after_quote.find('"') else {
            return Err(format!("an argument of `input` is not closed: {shape}"));
        };
        args.push(after_quote[..end].to_string());
        rest = after_quote[end + 1..].trim_start();
    }
    match <[String; 3]>::try_from(args) {
        Ok([group, store, dataset]) => Ok(Input {
            group,
            store,
            dataset,
        }),
        Err(args) => Err(format!(
            "`input` takes 3 arguments, found {}: {shape}",
            args.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inputs_and_bad_placeholders() {
        let sql = r#"SELECT * FROM {{ input "g" "s" "d" }} JOIN {{input "g" "s"}} ON {{ x }}"#;
        let found = placeholders(sql);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0].input,
            Ok(Input {
                group: "g".into(),
                store: "s".into(),
                dataset: "d".into()
            })
        );
        assert_eq!(&sql[found[0].range.clone()], r#"{{ input "g" "s" "d" }}"#);
        assert!(found[1].input.as_ref().unwrap_err().contains("3 arguments"));
        assert!(found[2].input.is_err());
        assert!(
            placeholders("SELECT {{ input")
                .pop()
                .unwrap()
                .input
                .is_err()
        );
    }
}
