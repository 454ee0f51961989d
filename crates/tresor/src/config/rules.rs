//! `[[rules]]` in `tresor.toml`: validation rules per secret-name pattern,
//! parsed into a [`RuleSet`] (the presets plus these), every problem with
//! its line and column.
//!
//! ```toml
//! [[rules]]
//! pattern = "db/*"            # glob on the secret name (or a list of them)
//! name = "db-password"        # optional: for `rule = "db-password"` in [secrets]
//! min_len = 16
//! charset = "printable"
//!
//! [[rules]]
//! pattern = "openai/legacy_*"
//! skip = true                 # no validation for these names (presets included)
//! ```
//!
//! Keys: `pattern`, `name`, `preset` (include a preset's checks), `prefix`
//! (a string or a list: any of them), `min_len`, `max_len`, `regex` (must
//! match the whole value), `charset`, `base64` (true), `pem` (true or the
//! block's label), `skip` (true). A rule needs a `pattern` or a `name`, and
//! at least one check unless it says `skip = true`.

use tresor_core::rules::{Charset, Check, Pattern, Rule, RuleSet, preset};

use toml::Spanned;
use toml::de::DeValue;

use super::Position;

const KEYS: [&str; 12] = [
    "pattern",
    "name",
    "preset",
    "prefix",
    "min_len",
    "max_len",
    "regex",
    "charset",
    "base64",
    "pem",
    "skip",
    "description",
];

/// Reads the `rules` array into `set`. `problem(offset, message)` records a
/// problem at a byte offset of the text; `position` turns an offset into a
/// line and column (for the rule's origin in messages).
pub(super) fn parse_rules(
    value: &Spanned<DeValue<'_>>,
    file: &str,
    position: &dyn Fn(usize) -> Position,
    problem: &mut dyn FnMut(usize, String),
    set: &mut RuleSet,
) {
    let DeValue::Array(items) = value.get_ref() else {
        problem(
            value.span().start,
            "rules must be an array of tables: write each rule as [[rules]]".into(),
        );
        return;
    };
    let mut names: Vec<(String, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            problem(
                item.span().start,
                "each entry of rules must be a table".into(),
            );
            continue;
        };
        let start = item.span().start;
        let at = position(start);
        let label = format!("rules[{}]", index + 1);
        let mut rule = Rule::new(label.clone(), format!("{file}:{}", at.line));
        let mut ok = true;
        let mut bad = |offset: usize, message: String, ok: &mut bool| {
            problem(offset, format!("{label}: {message}"));
            *ok = false;
        };
        for (key, v) in table.iter() {
            let k = key.get_ref().as_ref();
            let offset = v.span().start;
            match (k, v.get_ref()) {
                ("pattern", DeValue::String(s)) => rule.patterns.push(s.to_string()),
                ("pattern", DeValue::Array(list)) => {
                    for p in list.iter() {
                        match p.get_ref() {
                            DeValue::String(s) => rule.patterns.push(s.to_string()),
                            _ => bad(p.span().start, "a pattern must be a string".into(), &mut ok),
                        }
                    }
                }
                ("name", DeValue::String(s)) => {
                    if let Some((_, first)) = names.iter().find(|(n, _)| n == s.as_ref()) {
                        let line = position(*first).line;
                        bad(
                            offset,
                            format!("duplicate rule name '{s}' (first at line {line})"),
                            &mut ok,
                        );
                    } else if preset(s).is_some() {
                        bad(
                            offset,
                            format!("'{s}' is a preset's name; use preset = \"{s}\" to include it"),
                            &mut ok,
                        );
                    } else {
                        names.push((s.to_string(), offset));
                        rule.name = s.to_string();
                    }
                }
                ("preset", DeValue::String(s)) => match preset(s) {
                    Some(p) => rule.add_preset_checks(p),
                    None => bad(offset, unknown_preset(s), &mut ok),
                },
                ("prefix", DeValue::String(s)) => {
                    rule.checks.push(Check::Prefix(vec![s.to_string()]))
                }
                ("prefix", DeValue::Array(list)) => {
                    let mut all = Vec::new();
                    for p in list.iter() {
                        match p.get_ref() {
                            DeValue::String(s) => all.push(s.to_string()),
                            _ => bad(p.span().start, "a prefix must be a string".into(), &mut ok),
                        }
                    }
                    rule.checks.push(Check::Prefix(all));
                }
                ("min_len" | "max_len", DeValue::Integer(i)) => {
                    match usize::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                        Ok(n) if k == "min_len" => rule.checks.push(Check::MinLen(n)),
                        Ok(n) => rule.checks.push(Check::MaxLen(n)),
                        Err(_) => bad(
                            offset,
                            format!("{k} must be a whole number from 0"),
                            &mut ok,
                        ),
                    }
                }
                ("regex", DeValue::String(s)) => match Pattern::new(s) {
                    Ok(p) => rule.checks.push(Check::Regex(p)),
                    Err(e) => bad(offset, e.to_string(), &mut ok),
                },
                ("charset", DeValue::String(s)) => match Charset::new(s) {
                    Ok(c) => rule.checks.push(Check::Charset(c)),
                    Err(e) => bad(offset, e.to_string(), &mut ok),
                },
                ("base64", DeValue::Boolean(b)) => {
                    if *b {
                        rule.checks.push(Check::Base64);
                    }
                }
                ("pem", DeValue::Boolean(b)) => {
                    if *b {
                        rule.checks.push(Check::Pem(None));
                    }
                }
                ("pem", DeValue::String(s)) => rule.checks.push(Check::Pem(Some(s.to_string()))),
                ("skip", DeValue::Boolean(b)) => rule.skip = *b,
                ("description", DeValue::String(_)) => {}
                (k, other) if KEYS.contains(&k) => bad(
                    offset,
                    format!("{k} must be {}, not {}", expected(k), other.type_str()),
                    &mut ok,
                ),
                (k, _) => bad(
                    key.span().start,
                    format!("unknown key '{k}' (expected one of: {})", KEYS.join(", ")),
                    &mut ok,
                ),
            }
        }
        if rule.patterns.is_empty() && !table.contains_key("name") {
            bad(start, "a rule needs a pattern (or a name)".into(), &mut ok);
        }
        if rule.skip && !rule.checks.is_empty() {
            bad(
                start,
                "skip = true turns validation off: leave out the checks".into(),
                &mut ok,
            );
        }
        if !rule.skip && rule.checks.is_empty() && ok {
            bad(
                start,
                "a rule with no checks would turn validation off; say skip = true if that is \
                 meant"
                    .into(),
                &mut ok,
            );
        }
        if ok {
            set.push(rule);
        }
    }
}

fn expected(key: &str) -> &'static str {
    match key {
        "pattern" | "prefix" => "a string or a list of strings",
        "min_len" | "max_len" => "a whole number",
        "base64" | "skip" => "true or false",
        "pem" => "true or a PEM label such as \"PRIVATE KEY\"",
        _ => "a string",
    }
}

fn unknown_preset(name: &str) -> String {
    format!(
        "unknown preset '{name}' (presets: {})",
        tresor_core::rules::PRESETS
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}
