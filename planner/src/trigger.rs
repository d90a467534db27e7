//! Trigger syntax: durations (`30s`, `5m`, `1h30m`, `1d`) and five-field cron expressions.

/// Parses a positive duration made of `<number><unit>` parts, units `s`, `m`, `h`, `d`; returns seconds.
/// The error is a phrase that follows the duration in a message ("is not a duration").
pub fn parse_duration(text: &str) -> Result<u64, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty");
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err("has a unit other than s, m, h or d"),
        };
        if digits.is_empty() {
            return Err("has a unit without a number before it");
        }
        let n: u64 = digits.parse().map_err(|_| "is too long")?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or("is too long")?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err("ends with a number without a unit");
    }
    if total == 0 {
        return Err("is not positive");
    }
    Ok(total)
}

const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (
        "day of week",
        0,
        7,
        &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    ),
];

/// Checks a five-field cron expression: `*`, numbers, `a-b` ranges, `/n` steps, `,` lists, and month and
/// weekday names.
pub fn check_cron(text: &str) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("it has {} fields, not 5", fields.len()));
    }
    for (field, (what, min, max, names)) in fields.iter().zip(FIELDS) {
        for part in field.split(',') {
            check_cron_part(part, min, max, names)
                .map_err(|why| format!("{what} field `{field}`: {why}"))?;
        }
    }
    Ok(())
}

fn check_cron_part(part: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("step `{step}` is not a positive number")),
        }
    }
    if range == "*" {
        return Ok(());
    }
    let value = |v: &str| -> Result<u32, String> {
        if let Ok(n) = v.parse::<u32>() {
            if (min..=max).contains(&n) {
                return Ok(n);
            }
            return Err(format!("{n} is outside {min}-{max}"));
        }
        let lower = v.to_ascii_lowercase();
        names
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + min)
            .ok_or_else(|| format!("`{v}` is not a number"))
    };
    match range.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("range {a}-{b} is backwards"));
            }
        }
        None => {
            value(range)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn crons() {
        for ok in [
            "*/5 * * * *",
            "0 2 * * 1-5",
            "15,45 * 1 JAN,jul sun",
            "0 0 1-31/2 * 7",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }
}
