//! References to secrets and environment variables inside configuration:
//! a string value that is exactly a reference is replaced by what it names.
//!
//! | written | resolves to |
//! | --- | --- |
//! | `SEC/name` | the secret's current value, from the first store that has it |
//! | `SEC/name#3` | version 3 |
//! | `SEC/name@previous` | the version a label points at (`current`, `previous`, `pending`) |
//! | `SEC/store:name` | the secret from that store of the config only (`#N`/`@label` may follow) |
//! | `ENV/VAR` | the environment variable `VAR` |
//! | `\SEC/…`, `\ENV/…` | the literal text without the first backslash |
//!
//! Only whole string values are references: `"prefix SEC/x"` is plain
//! text, and so are keys. Spaces around a name are ignored
//! (`"SEC/ db_password "`), as configs written for dtPyAppFramework expect.
//! Unlike that framework, a secret or variable that is missing is an
//! error, never the reference text handed on as if it were the value. Errors
//! name the file, the key path and the reference, never a value.
//!
//! Documents: [`Resolver::resolve_json`] (a `serde_json::Value` in place),
//! [`Resolver::render`] (YAML, TOML or JSON text in, the same format out,
//! key order kept; TOML keeps its comments and layout), and
//! [`Resolver::load_yaml`] (a YAML config straight into your own type).
//!
//! ```
//! use tresor::refs::{Reference, Resolver};
//! use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
//! let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
//! tresor.set(&SecretName::new("db/password")?, &SecretValue::copy_from(b"pa55"), &Default::default())?;
//!
//! assert!(matches!(Reference::parse("SEC/db/password#2")?, Some(Reference::Secret { .. })));
//! assert_eq!(Reference::parse("plain text")?, None);
//!
//! let mut resolver = Resolver::new(&mut tresor);
//! assert_eq!(resolver.resolve_str("SEC/db/password")?.as_deref().map(String::as_str), Some("pa55"));
//! assert_eq!(resolver.resolve_str("\\SEC/db/password")?.as_deref().map(String::as_str), Some("SEC/db/password"));
//! assert_eq!(resolver.resolve_str("just text")?, None);
//!
//! let mut config = serde_json::json!({"db": {"user": "app", "password": "SEC/db/password"}});
//! resolver.resolve_json(&mut config, None)?;
//! assert_eq!(config["db"]["password"], "pa55");
//!
//! let err = resolver.resolve_str("SEC/db/missing").unwrap_err();
//! assert!(err.to_string().contains("SEC/db/missing"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use tresor_core::{Error, Label, Result, SecretName, Selector};

use crate::Tresor;

mod doc;

pub use doc::Format;

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `SEC/[store:]name[#N|@label]`.
    Secret {
        /// The one store to ask, if given.
        store: Option<String>,
        /// The secret.
        name: SecretName,
        /// The version or label (default: current).
        selector: Selector,
    },
    /// `ENV/VAR`.
    Env(String),
}

/// What a string value is, for resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified<'a> {
    /// A reference.
    Reference(Reference),
    /// An escaped literal (`\SEC/…`): the text with the first backslash gone.
    Escaped(&'a str),
    /// Anything else: left as it is.
    Plain,
}

impl Reference {
    /// `Ok(None)` for text that is not a reference (including an escaped
    /// one); an error for text that starts like one but is malformed
    /// (`SEC/`, `SEC/a#0`, `SEC/a@latest`, `SEC/bad store:a`).
    pub fn parse(text: &str) -> Result<Option<Reference>> {
        match classify(text)? {
            Classified::Reference(r) => Ok(Some(r)),
            _ => Ok(None),
        }
    }
}

/// Sorts a string value: a reference, an escaped literal, or plain text.
/// A malformed reference is `Error::Malformed` naming the reference.
pub fn classify(text: &str) -> Result<Classified<'_>> {
    let unescaped = text.trim_start_matches('\\');
    if unescaped.len() != text.len()
        && (unescaped.starts_with("SEC/") || unescaped.starts_with("ENV/"))
    {
        return Ok(Classified::Escaped(&text[1..]));
    }
    let malformed = |problem: String| Error::Malformed {
        what: format!("reference {}", printable(text)),
        problem,
    };
    if let Some(var) = text.strip_prefix("ENV/") {
        let var = var.trim();
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(malformed(
                "ENV/ must be followed by a variable name without '='".into(),
            ));
        }
        return Ok(Classified::Reference(Reference::Env(var.to_string())));
    }
    let Some(rest) = text.strip_prefix("SEC/") else {
        return Ok(Classified::Plain);
    };
    let rest = rest.trim();
    let (store, rest) = match rest.split_once(':') {
        Some((store, rest)) => {
            if !crate::config::valid_store_name(store) {
                return Err(malformed(
                    "the store before ':' must be 1 to 64 of A-Z a-z 0-9 . _ -".into(),
                ));
            }
            (Some(store.to_string()), rest)
        }
        None => (None, rest),
    };
    let (name, selector) = if let Some((name, v)) = rest.split_once('#') {
        match v.parse::<u64>() {
            Ok(v) if v > 0 => (name, Selector::Version(v)),
            _ => {
                return Err(malformed(
                    "the version after # must be a whole number from 1".into(),
                ));
            }
        }
    } else if let Some((name, label)) = rest.split_once('@') {
        match label.parse::<Label>() {
            Ok(l) => (name, Selector::Label(l)),
            Err(_) => {
                return Err(malformed(
                    "the label after @ must be current, previous or pending".into(),
                ));
            }
        }
    } else {
        (rest, Selector::default())
    };
    let name = SecretName::new(name).map_err(|e| malformed(e.to_string()))?;
    Ok(Classified::Reference(Reference::Secret {
        store,
        name,
        selector,
    }))
}

/// Text safe to show in a message: at most 200 characters, control
/// characters escaped.
fn printable(text: &str) -> String {
    let short: String = text.chars().take(200).collect();
    let mut out = format!("{short:?}");
    if short.len() < text.len() {
        out.push('…');
    }
    out
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Env(v) => write!(f, "ENV/{v}"),
            Reference::Secret {
                store,
                name,
                selector,
            } => {
                f.write_str("SEC/")?;
                if let Some(s) = store {
                    write!(f, "{s}:")?;
                }
                write!(f, "{name}")?;
                match selector {
                    Selector::Label(Label::Current) => Ok(()),
                    Selector::Label(l) => write!(f, "@{l}"),
                    Selector::Version(v) => write!(f, "#{v}"),
                }
            }
        }
    }
}

/// Where a value is: the file (if any), the key path (`db.hosts[0]`) in a
/// document, or the line and column in a template.
#[derive(Clone, Copy, Debug, Default)]
pub struct Place<'a> {
    /// The file, when the text came from one.
    pub file: Option<&'a Path>,
    /// The key path, empty for a lone string or a template.
    pub path: &'a str,
    /// Line and column (from 1) in a template.
    pub line: Option<(usize, usize)>,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file, self.line) {
            (Some(file), Some((l, c))) => write!(f, "{}:{l}:{c}", file.display())?,
            (None, Some((l, c))) => write!(f, "line {l}, column {c}")?,
            (Some(file), None) => write!(f, "{}", file.display())?,
            (None, None) if self.path.is_empty() => return f.write_str("value"),
            (None, None) => {}
        }
        if !self.path.is_empty() {
            if self.file.is_some() || self.line.is_some() {
                f.write_str(", ")?;
            }
            write!(f, "key {}", self.path)?;
        }
        Ok(())
    }
}

/// Reads an environment variable for `ENV/…` references.
type EnvLookup<'t> = dyn FnMut(&str) -> Option<Zeroizing<String>> + 't;

/// Resolves references through a [`Tresor`] (secrets) and this process's
/// environment (variables). Each reference is looked up once per resolver;
/// the values it holds are zeroized when it is dropped.
pub struct Resolver<'t> {
    tresor: &'t mut Tresor,
    env: Box<EnvLookup<'t>>,
    cache: HashMap<String, Zeroizing<String>>,
}

impl fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("resolved", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<'t> Resolver<'t> {
    /// A resolver reading secrets through `tresor` and variables from the
    /// environment.
    pub fn new(tresor: &'t mut Tresor) -> Self {
        Self {
            tresor,
            env: Box::new(|var| {
                std::env::var_os(var).map(|v| Zeroizing::new(v.to_string_lossy().into_owned()))
            }),
            cache: HashMap::new(),
        }
    }

    /// Reads `ENV/…` references through `lookup` instead of the process
    /// environment (tests, embedders with their own settings).
    pub fn with_env(mut self, lookup: impl FnMut(&str) -> Option<Zeroizing<String>> + 't) -> Self {
        self.env = Box::new(lookup);
        self
    }

    /// `Some(value)` for a reference or an escaped literal, `None` for plain
    /// text (keep it as it is).
    pub fn resolve_str(&mut self, text: &str) -> Result<Option<Zeroizing<String>>> {
        self.resolve_at(text, Place::default())
    }

    /// As [`Resolver::resolve_str`], with `place` named in errors.
    pub fn resolve_at(
        &mut self,
        text: &str,
        place: Place<'_>,
    ) -> Result<Option<Zeroizing<String>>> {
        let classified = classify(text).map_err(|e| match e {
            Error::Malformed { what, problem } => Error::Malformed {
                what: format!("{place}: {what}"),
                problem,
            },
            e => e,
        })?;
        match classified {
            Classified::Plain => Ok(None),
            Classified::Escaped(t) => Ok(Some(Zeroizing::new(t.to_string()))),
            Classified::Reference(r) => self.lookup(&r, place).map(Some),
        }
    }

    /// Reads every `SEC/name` reference among `texts` ahead, in one batch
    /// through [`Tresor::get_many`] (one vault transaction, remote stores at
    /// once); the values are cached for the resolution that follows, and a
    /// reference that fails is left for it to report.
    pub fn prefetch<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) {
        let mut refs: Vec<(SecretName, Selector)> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for text in texts {
            if let Ok(Classified::Reference(Reference::Secret {
                store: None,
                name,
                selector,
            })) = classify(text)
            {
                let key = Reference::Secret {
                    store: None,
                    name: name.clone(),
                    selector,
                }
                .to_string();
                if self.cache.contains_key(&key) || !seen.insert(key.clone()) {
                    continue;
                }
                refs.push((name, selector));
                keys.push(key);
            }
        }
        if refs.len() < 2 {
            return;
        }
        for (key, answer) in keys.into_iter().zip(self.tresor.get_many(&refs)) {
            if let Ok(found) = answer
                && let Ok(text) = std::str::from_utf8(found.secret.value.expose_secret())
            {
                self.cache.insert(key, Zeroizing::new(text.to_string()));
            }
        }
    }

    /// The value `reference` names (cached for this resolver).
    pub fn lookup(&mut self, reference: &Reference, place: Place<'_>) -> Result<Zeroizing<String>> {
        let key = reference.to_string();
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let value = match reference {
            Reference::Env(var) => (self.env)(var).ok_or_else(|| Error::NotFound {
                store: format!("{place}"),
                what: format!("{reference} (the variable {var} is not set)"),
            })?,
            Reference::Secret {
                store,
                name,
                selector,
            } => {
                let found = match store {
                    Some(s) => self.tresor.get_from(s, name, *selector),
                    None => self.tresor.get(name, *selector),
                }
                .map_err(|e| match e {
                    Error::NotFound { store, what } => Error::NotFound {
                        store: format!("{place}"),
                        what: format!("{reference} ({what} in {store})"),
                    },
                    Error::Deleted { store, name } => Error::NotFound {
                        store: format!("{place}"),
                        what: format!("{reference} ('{name}' is deleted in {store})"),
                    },
                    Error::Validation(m) => Error::Validation(format!("{place}: {reference}: {m}")),
                    e => e,
                })?;
                let bytes = found.secret.value.expose_secret();
                match std::str::from_utf8(bytes) {
                    Ok(text) => Zeroizing::new(text.to_string()),
                    Err(_) => {
                        return Err(Error::Malformed {
                            what: format!("{place}: {reference}"),
                            problem: "the secret is not UTF-8 text, so it cannot stand in a \
                                      text document"
                                .into(),
                        });
                    }
                }
            }
        };
        self.cache.insert(key, value.clone());
        Ok(value)
    }

    /// Resolves every reference in `value` (strings in nested objects and
    /// arrays; keys are left alone), in place. On an error `value` may be
    /// partly resolved: drop it.
    pub fn resolve_json(
        &mut self,
        value: &mut serde_json::Value,
        file: Option<&Path>,
    ) -> Result<()> {
        let mut texts = Vec::new();
        doc::json_strings(value, &mut texts);
        self.prefetch(texts);
        let mut path = String::new();
        self.json_at(value, file, &mut path)
    }

    fn json_at(
        &mut self,
        value: &mut serde_json::Value,
        file: Option<&Path>,
        path: &mut String,
    ) -> Result<()> {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if let Some(v) = self.resolve_at(
                    s,
                    Place {
                        file,
                        path,
                        line: None,
                    },
                )? {
                    zeroize::Zeroize::zeroize(s);
                    *s = v.to_string();
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    doc::push_index(path, i);
                    self.json_at(item, file, path)?;
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = path.len();
                    doc::push_key(path, k);
                    self.json_at(item, file, path)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Resolves every reference in a YAML, TOML or JSON document and
    /// returns the document in the same format, in its key order (TOML
    /// also keeps comments and layout). Fails on the first reference that
    /// does not resolve, naming `file`, the key path and the reference.
    pub fn render(
        &mut self,
        text: &str,
        format: Format,
        file: Option<&Path>,
    ) -> Result<Zeroizing<String>> {
        doc::render(self, text, format, file)
    }

    /// Replaces each `{{ SEC/… }}` or `{{ ENV/… }}` placeholder in a
    /// template (any text format) with the value; `{{ \\SEC/… }}` gives the
    /// placeholder itself without the backslash, and other `{{ … }}` are
    /// left as they are. Fails on the first placeholder that does not
    /// resolve, naming `file`, line, column and reference.
    ///
    /// ```
    /// # use tresor::{CreateOptions, Credential, Tresor, Vault};
    /// # let dir = tempfile::tempdir()?;
    /// # let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
    /// # let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
    /// # let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
    /// use tresor::refs::Resolver;
    /// let mut r = Resolver::new(&mut tresor).with_env(|v| (v == "HOST").then(|| "db1".to_string().into()));
    /// let out = r.inject("host={{ ENV/HOST }} raw={{ \\ENV/HOST }} other={{ .Values }}", None)?;
    /// assert_eq!(out.as_str(), "host=db1 raw={{ ENV/HOST }} other={{ .Values }}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inject(&mut self, template: &str, file: Option<&Path>) -> Result<Zeroizing<String>> {
        let placeholders: Vec<&str> = template
            .split("{{")
            .skip(1)
            .filter_map(|s| s.split_once("}}").map(|(inner, _)| inner.trim()))
            .collect();
        self.prefetch(placeholders);
        let mut out = Zeroizing::new(String::with_capacity(template.len()));
        let mut rest = 0;
        let mut from = 0;
        while let Some(open) = template[from..].find("{{").map(|i| from + i) {
            let Some(close) = template[open + 2..].find("}}").map(|i| open + 2 + i) else {
                break;
            };
            let inner = &template[open + 2..close];
            let at = || {
                let before = &template[..open];
                let line = before.matches('\n').count() + 1;
                let start = before.rfind('\n').map_or(0, |i| i + 1);
                (line, before[start..].chars().count() + 1)
            };
            let trimmed = inner.trim();
            let place = || Place {
                file,
                path: "",
                line: Some(at()),
            };
            let classified = classify(trimmed).map_err(|e| match e {
                Error::Malformed { what, problem } => Error::Malformed {
                    what: format!("{}: {what}", place()),
                    problem,
                },
                e => e,
            })?;
            match classified {
                Classified::Plain => {
                    from = open + 2;
                    continue;
                }
                Classified::Escaped(_) => {
                    let slash = open + 2 + inner.find('\\').unwrap_or(0);
                    out.push_str(&template[rest..slash]);
                    out.push_str(&template[slash + 1..close + 2]);
                }
                Classified::Reference(r) => {
                    let value = self.lookup(&r, place())?;
                    out.push_str(&template[rest..open]);
                    out.push_str(&value);
                }
            }
            rest = close + 2;
            from = rest;
        }
        out.push_str(&template[rest..]);
        Ok(out)
    }

    /// Reads a YAML document, resolves its references, and deserializes
    /// it into `T`: how a program loads its own config with secrets in it.
    pub fn load_yaml<T: serde::de::DeserializeOwned>(
        &mut self,
        text: &str,
        file: Option<&Path>,
    ) -> Result<T> {
        let mut value = doc::yaml_to_json(text, file)?;
        self.resolve_json(&mut value, file)?;
        // serde's message could quote a value: only the fact is reported.
        let out = T::deserialize(&value).map_err(|_| Error::Malformed {
            what: file.map_or_else(|| "the YAML document".into(), |f| f.display().to_string()),
            problem: "does not fit the type it is loaded into (the details are not shown, \
                      as they could quote a secret)"
                .into(),
        });
        doc::wipe_json(&mut value);
        out
    }
}

#[cfg(test)]
mod tests;
