//! A minimal `--flag value` / `--flag=value` / `--switch` parser (xtask stays std-only).

use std::collections::BTreeMap;
use std::str::FromStr;

/// Parsed flags of one command.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `args`. `valued` lists the flags that take a value, `switches` those that don't (names
    /// without the leading `--`). Unknown flags, positional arguments, repeats and missing values are errors.
    pub(crate) fn parse(
        args: &[String],
        valued: &[&str],
        switches: &[&str],
    ) -> Result<Self, String> {
        let mut flags = Flags::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument `{arg}`"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            if switches.contains(&name) {
                if inline.is_some() {
                    return Err(format!("`--{name}` takes no value"));
                }
                if flags.switches.iter().any(|s| s == name) {
                    return Err(format!("`--{name}` given twice"));
                }
                flags.switches.push(name.to_string());
            } else if valued.contains(&name) {
                let value = match inline {
                    Some(value) => value,
                    None => iter
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("`--{name}` needs a value"))?,
                };
                if flags.values.insert(name.to_string(), value).is_some() {
                    return Err(format!("`--{name}` given twice"));
                }
            } else {
                return Err(format!("unknown flag `{arg}`"));
            }
        }
        Ok(flags)
    }

    /// The raw value of `--name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the switch `--name` was given.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The value of `--name` parsed as `T`, if given.
    pub(crate) fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| format!("`--{name}`: cannot parse `{raw}`")),
        }
    }

    /// The value of `--name` parsed as `T`; an error when missing.
    pub(crate) fn required<T: FromStr>(&self, name: &str) -> Result<T, String> {
        self.parsed(name)?
            .ok_or_else(|| format!("`--{name}` is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_both_forms_and_switches() {
        let flags = Flags::parse(
            &strings(&["--out", "x", "--stores=3", "--no-pin"]),
            &["out", "stores"],
            &["no-pin"],
        )
        .unwrap();
        assert_eq!(flags.get("out"), Some("x"));
        assert_eq!(flags.required::<usize>("stores").unwrap(), 3);
        assert!(flags.has("no-pin"));
        assert_eq!(flags.parsed::<usize>("files").unwrap(), None);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Flags::parse(&strings(&["--bogus", "1"]), &["out"], &[]).is_err());
        assert!(Flags::parse(&strings(&["positional"]), &["out"], &[]).is_err());
        assert!(Flags::parse(&strings(&["--out"]), &["out"], &[]).is_err());
        assert!(Flags::parse(&strings(&["--out", "a", "--out", "b"]), &["out"], &[]).is_err());
        let flags = Flags::parse(&strings(&["--stores", "many"]), &["stores"], &[]).unwrap();
        assert!(flags.required::<usize>("stores").is_err());
        assert!(flags.required::<usize>("workspaces").is_err());
    }
}
