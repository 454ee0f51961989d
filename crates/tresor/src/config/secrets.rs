//! `[secrets]` and `[profiles.NAME.secrets]`: what an application needs,
//! by environment variable.
//!
//! ```toml
//! [secrets]
//! OPENAI_API_KEY = { name = "openai/api_key", rule = "openai", description = "model calls" }
//! DATABASE_URL = "app/database_url"            # short for { name = "app/database_url" }
//! SESSION_KEY = { name = "app/session_key", generate = { length = 48, charset = "base64url" } }
//! LOG_LEVEL = { name = "app/log_level", required = false, default = "info" }
//! TLS_KEY = { name = "app/tls_key", as_file = true }
//!
//! [profiles.prod]
//! stores = ["team"]
//!
//! [profiles.prod.secrets]
//! DATABASE_URL = { name = "prod/database_url" }  # the other fields are inherited
//! ```
//!
//! A profile's entry for a variable the top level declares overrides only
//! the fields it gives; a new variable is declared for that profile alone.
//! `required` is true unless said otherwise. `default` is for values that
//! are not secret (a log level, a region): it is written in the config.
//! `rule` names a validation rule; its meaning belongs to validation.

use super::*;
use crate::generate::{Charset, DEFAULT_LENGTH, MAX_LENGTH};

/// Longest environment variable name accepted.
pub const MAX_VAR_LEN: usize = 256;

/// One declared secret, as in effect for a profile.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Declared {
    /// The environment variable that receives it.
    pub var: String,
    /// The secret's name in the stores.
    pub name: SecretName,
    /// A program cannot start without it (default true).
    pub required: bool,
    /// A value that is not secret, used when no store has the secret.
    pub default: Option<String>,
    /// How to make a value when it is missing (`tresor check --fix`).
    pub generate: Option<Generate>,
    /// What it is for, for people.
    pub description: Option<String>,
    /// The validation rule it must pass, by name.
    pub rule: Option<String>,
    /// Handed to programs as a file whose path is in the variable.
    pub as_file: bool,
    /// Where the declaration is (the profile's entry, if it has one).
    pub at: Position,
}

/// `generate = { length, charset }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Generate {
    /// Characters, 1 to 4096 (default 32).
    pub length: usize,
    /// The characters used (default `alnum`).
    pub charset: Charset,
}

impl Default for Generate {
    fn default() -> Self {
        Self {
            length: DEFAULT_LENGTH,
            charset: Charset::default(),
        }
    }
}

/// Whether `var` can name an environment variable tresor sets: a letter or
/// `_`, then letters, digits and `_`, at most [`MAX_VAR_LEN`] bytes.
pub fn valid_var_name(var: &str) -> bool {
    let mut bytes = var.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && var.len() <= MAX_VAR_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One entry as written: only the fields given.
#[derive(Clone, Debug, Default)]
pub(super) struct RawSecret {
    pub(super) var: String,
    pub(super) at: Position,
    name: Option<SecretName>,
    required: Option<bool>,
    default: Option<String>,
    generate: Option<Generate>,
    description: Option<String>,
    rule: Option<String>,
    as_file: Option<bool>,
}

impl RawSecret {
    /// `self` with the fields it lacks taken from `base`.
    fn over(&self, base: &RawSecret) -> RawSecret {
        RawSecret {
            var: self.var.clone(),
            at: self.at,
            name: self.name.clone().or_else(|| base.name.clone()),
            required: self.required.or(base.required),
            default: self.default.clone().or_else(|| base.default.clone()),
            generate: self.generate.or(base.generate),
            description: self
                .description
                .clone()
                .or_else(|| base.description.clone()),
            rule: self.rule.clone().or_else(|| base.rule.clone()),
            as_file: self.as_file.or(base.as_file),
        }
    }

    fn finish(self) -> std::result::Result<Declared, (Position, String)> {
        let Some(name) = self.name else {
            return Err((
                self.at,
                format!(
                    "secret {}: no name (write {} = {{ name = \"app/secret\" }})",
                    self.var, self.var
                ),
            ));
        };
        if self.default.is_some() && self.generate.is_some() {
            return Err((
                self.at,
                format!(
                    "secret {}: give default or generate, not both (a default is not secret; \
                     generate makes a secret value)",
                    self.var
                ),
            ));
        }
        Ok(Declared {
            var: self.var,
            name,
            required: self.required.unwrap_or(true),
            default: self.default,
            generate: self.generate,
            description: self.description,
            rule: self.rule,
            as_file: self.as_file.unwrap_or(false),
            at: self.at,
        })
    }
}

/// What [`merge`] gives: the top level's declarations, each profile's, and
/// the problems found.
pub(super) type Merged = (
    Vec<Declared>,
    BTreeMap<String, Vec<Declared>>,
    Vec<(Position, String)>,
);

/// The declarations in effect: the top level's, then each profile's merged
/// over them. Problems (a declaration without a name, say) are reported
/// where the entry is.
pub(super) fn merge(top: &[RawSecret], profiles: &BTreeMap<String, Vec<RawSecret>>) -> Merged {
    let mut problems = Vec::new();
    let mut finish = |raw: RawSecret, out: &mut Vec<Declared>| match raw.finish() {
        Ok(d) => out.push(d),
        Err(p) => problems.push(p),
    };
    let mut base = Vec::new();
    for raw in top {
        finish(raw.clone(), &mut base);
    }
    let mut per_profile = BTreeMap::new();
    for (pname, entries) in profiles {
        let mut out = Vec::new();
        for raw in top {
            match entries.iter().find(|e| e.var == raw.var) {
                Some(over) => finish(over.over(raw), &mut out),
                None => {
                    if let Some(d) = base.iter().find(|d| d.var == raw.var) {
                        out.push(d.clone());
                    }
                }
            }
        }
        for raw in entries {
            if !top.iter().any(|t| t.var == raw.var) {
                finish(raw.clone(), &mut out);
            }
        }
        per_profile.insert(pname.clone(), out);
    }
    (base, per_profile, problems)
}

impl<'t> parse::Parser<'t> {
    /// A `secrets` table (top level, or a profile's): every entry, with a
    /// problem for each field that is wrong.
    pub(super) fn secrets(&mut self, value: &Spanned<DeValue<'_>>, owner: &str) -> Vec<RawSecret> {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span().start,
                format!(
                    "{owner} must be a table of VARIABLE = {{ name = \"…\" }} entries, not {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, entry) in table.iter() {
            let var = key.get_ref().to_string();
            if !valid_var_name(&var) {
                self.problem(
                    key.span().start,
                    format!(
                        "{owner}: {var:?} is not an environment variable name \
                         (a letter or _, then letters, digits and _)"
                    ),
                );
                continue;
            }
            let mut raw = RawSecret {
                var: var.clone(),
                at: self.position(key.span().start),
                ..RawSecret::default()
            };
            match entry.get_ref() {
                DeValue::String(s) => raw.name = self.secret_name(entry.span().start, &var, s),
                DeValue::Table(fields) => self.secret_fields(&var, fields, &mut raw),
                other => {
                    self.problem(
                        entry.span().start,
                        format!(
                            "secret {var}: write a name (\"app/secret\") or a table \
                             ({{ name = \"app/secret\", … }}), not {}",
                            other.type_str()
                        ),
                    );
                    continue;
                }
            }
            out.push(raw);
        }
        // The table iterates by key; declarations keep the file's order.
        out.sort_by_key(|r| r.at);
        out
    }

    fn secret_name(&mut self, offset: usize, var: &str, text: &str) -> Option<SecretName> {
        match SecretName::new(text) {
            Ok(n) => Some(n),
            Err(e) => {
                self.problem(offset, format!("secret {var}: {e}"));
                None
            }
        }
    }

    fn secret_fields(&mut self, var: &str, fields: &DeTable<'_>, raw: &mut RawSecret) {
        for (key, value) in fields.iter() {
            let field = key.get_ref().as_ref();
            let at = value.span().start;
            let v = value.get_ref();
            match field {
                "name" => match v {
                    DeValue::String(s) => raw.name = self.secret_name(at, var, s),
                    other => self.wrong_type(at, var, field, "a string", other),
                },
                "required" | "as_file" => match v {
                    DeValue::Boolean(b) if field == "required" => raw.required = Some(*b),
                    DeValue::Boolean(b) => raw.as_file = Some(*b),
                    other => self.wrong_type(at, var, field, "true or false", other),
                },
                "default" => match v {
                    DeValue::String(s) => raw.default = Some(s.to_string()),
                    DeValue::Integer(i) => raw.default = Some(i.as_str().to_string()),
                    DeValue::Float(f) => raw.default = Some(f.as_str().to_string()),
                    DeValue::Boolean(b) => raw.default = Some(b.to_string()),
                    other => self.wrong_type(at, var, field, "a string", other),
                },
                "description" | "rule" => match v {
                    DeValue::String(s) if field == "description" => {
                        raw.description = Some(s.to_string())
                    }
                    DeValue::String(s) if s.is_empty() => {
                        self.problem(at, format!("secret {var}: rule is empty"))
                    }
                    DeValue::String(s) => raw.rule = Some(s.to_string()),
                    other => self.wrong_type(at, var, field, "a string", other),
                },
                "generate" => raw.generate = self.generate(at, var, v),
                other => self.problem(
                    key.span().start,
                    format!(
                        "secret {var}: unknown key '{other}' (expected name, required, default, \
                         generate, description, rule or as_file)"
                    ),
                ),
            }
        }
    }

    fn generate(&mut self, at: usize, var: &str, value: &DeValue<'_>) -> Option<Generate> {
        let fields = match value {
            DeValue::Boolean(true) => return Some(Generate::default()),
            DeValue::Table(t) => t,
            other => {
                self.wrong_type(at, var, "generate", "{ length, charset } or true", other);
                return None;
            }
        };
        let mut g = Generate::default();
        let mut ok = true;
        for (key, v) in fields.iter() {
            let vat = v.span().start;
            match (key.get_ref().as_ref(), v.get_ref()) {
                ("length", DeValue::Integer(i)) => {
                    match usize::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                        Ok(n) if (1..=MAX_LENGTH).contains(&n) => g.length = n,
                        _ => {
                            ok = false;
                            self.problem(
                                vat,
                                format!(
                                    "secret {var}: generate.length must be from 1 to {MAX_LENGTH}"
                                ),
                            );
                        }
                    }
                }
                ("charset", DeValue::String(s)) => match Charset::parse(s) {
                    Some(c) => g.charset = c,
                    None => {
                        ok = false;
                        self.problem(
                            vat,
                            format!(
                                "secret {var}: unknown charset {s:?} (expected one of: {})",
                                Charset::ALL.map(Charset::as_str).join(", ")
                            ),
                        );
                    }
                },
                (k @ ("length" | "charset"), other) => {
                    ok = false;
                    let want = if k == "length" {
                        "a whole number"
                    } else {
                        "a string"
                    };
                    self.wrong_type(vat, var, &format!("generate.{k}"), want, other);
                }
                (k, _) => {
                    ok = false;
                    self.problem(
                        key.span().start,
                        format!(
                            "secret {var}: unknown key 'generate.{k}' (expected length or charset)"
                        ),
                    );
                }
            }
        }
        ok.then_some(g)
    }

    fn wrong_type(&mut self, at: usize, var: &str, field: &str, want: &str, got: &DeValue<'_>) {
        self.problem(
            at,
            format!(
                "secret {var}: {field} must be {want}, not {}",
                got.type_str()
            ),
        );
    }
}
