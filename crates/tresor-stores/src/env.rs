//! Environment variables as a read-only store.
//!
//! # Names and variables
//!
//! A secret name maps to one variable: the store's prefix, then the name in
//! upper case with every `/`, `.` and `-` turned into `_`.
//!
//! | name | prefix | variable |
//! | --- | --- | --- |
//! | `openai/api_key` | none | `OPENAI_API_KEY` |
//! | `openai/api_key` | `MODEL_FORGE_` | `MODEL_FORGE_OPENAI_API_KEY` |
//! | `db.prod/password` | none | `DB_PROD_PASSWORD` |
//! | `DB/PROD-PASSWORD` | none | `DB_PROD_PASSWORD` |
//!
//! The mapping is many-to-one, so it cannot be undone exactly: `db.prod/password`,
//! `db/prod_password` and `DB/PROD-PASSWORD` all read `DB_PROD_PASSWORD`.
//! [`get`](Store::get) accepts every name that maps to a variable and returns
//! the value under the name it was asked for. [`list`](Store::list) has to
//! pick one name per variable, the **canonical name**: the variable without
//! the prefix, in lower case, with its first `_` that has a character on both
//! sides turned into `/` (`OPENAI_API_KEY` → `openai/api_key`,
//! `SERVICE_REST` → `service/rest`, `TOKEN` → `token`). A listing therefore
//! never shows `.`, `-`, upper case or a second `/`: `DB_PROD_PASSWORD` is
//! listed as `db/prod_password`, and `list("db.prod/")` does not find it
//! (`list("db/")` does). Variables no name maps to (lower-case letters or
//! other characters outside `A-Z 0-9 _`, non-Unicode names) are not listed
//! and cannot be read.
//!
//! Without a prefix every variable of the process is a secret of this store,
//! `PATH` (`path`) included; give a prefix to keep the store to its own.
//!
//! # Versions
//!
//! A variable has one value and no history: it reads as version 1, under the
//! `current` label. Another version number is [`Error::NotFound`] (that
//! version does not exist, as in any store); the `previous` and `pending`
//! labels are [`Error::Unsupported`] (the store has no labels at all).
//! `history`, `undelete` and `set_label` are unsupported; `put` and `delete`
//! are [`Error::ReadOnly`].
//!
//! # Source
//!
//! [`Env::new`] and [`Env::with_prefix`] read the process environment at
//! each call, so a variable set after the store was made is seen.
//! [`Env::from_map`] reads a fixed map instead, for tests (changing the
//! process environment is `unsafe` in multi-threaded programs) and for
//! environments captured elsewhere (a dotenv file, a container spec).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

use tresor_core::{
    Capabilities, DeleteMode, Error, Health, Label, PutOptions, Result, Secret, SecretInfo,
    SecretName, SecretValue, Selector, Store,
};

/// The store's name in messages unless [`Env::named`] gives another.
const DEFAULT_NAME: &str = "env";

/// Environment variables as a read-only [`Store`].
///
/// ```
/// use std::collections::BTreeMap;
///
/// use tresor_core::{SecretName, Selector, Store};
/// use tresor_stores::env::Env;
///
/// let vars = BTreeMap::from([("MODEL_FORGE_OPENAI_API_KEY".to_string(), b"sk-test".to_vec())]);
/// let mut env = Env::from_map_with_prefix(vars, "MODEL_FORGE_")?;
/// let name = SecretName::new("openai/api_key")?;
/// assert_eq!(env.variable_for(&name), "MODEL_FORGE_OPENAI_API_KEY");
/// assert_eq!(env.get(&name, Selector::default())?.value.expose_secret(), b"sk-test");
/// assert_eq!(env.list("")?[0].name, name);
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub struct Env {
    name: String,
    prefix: String,
    source: Source,
}

/// Where the variables come from.
enum Source {
    /// The process environment, read at each call.
    Process,
    /// A fixed map of variable names to values.
    Map(BTreeMap<String, Vec<u8>>),
}

impl Env {
    /// The process environment, without a prefix: `openai/api_key` reads
    /// `OPENAI_API_KEY`.
    pub fn new() -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            prefix: String::new(),
            source: Source::Process,
        }
    }

    /// The process environment, with a prefix: with `MODEL_FORGE_`,
    /// `openai/api_key` reads `MODEL_FORGE_OPENAI_API_KEY`.
    ///
    /// The prefix may hold only `A-Z a-z 0-9 _`; anything else is a
    /// [`Error::InvalidOption`] (of the option `prefix`).
    pub fn with_prefix(prefix: impl Into<String>) -> Result<Self> {
        Self::new().prefixed(prefix.into())
    }

    /// A fixed map of variables instead of the process environment, without
    /// a prefix. The map's values are plain `Vec`s, not wiped on drop: this
    /// is for tests and for environments that were captured in the clear
    /// anyway.
    pub fn from_map(variables: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            source: Source::Map(variables),
            ..Self::new()
        }
    }

    /// A fixed map of variables, with a prefix (see [`Env::with_prefix`]).
    pub fn from_map_with_prefix(
        variables: BTreeMap<String, Vec<u8>>,
        prefix: impl Into<String>,
    ) -> Result<Self> {
        Self::from_map(variables).prefixed(prefix.into())
    }

    /// The store a `tresor.toml` entry describes: the process environment,
    /// named after the entry, with the optional option `prefix`. Any other
    /// option is an error.
    ///
    /// ```
    /// use tresor_stores::{StoreOptions, env::Env};
    ///
    /// let env = Env::from_options(&StoreOptions::new("ci").with("prefix", "APP_"))?;
    /// assert_eq!(env.prefix(), "APP_");
    /// assert!(Env::from_options(&StoreOptions::new("ci").with("prefx", "APP_")).is_err());
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn from_options(options: &crate::StoreOptions) -> Result<Self> {
        let prefix = options.get("prefix").unwrap_or_default().to_string();
        options.finish()?;
        Self::new().named(options.store()).prefixed(prefix)
    }

    /// The same store under another name in messages (a config's store name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The prefix, empty if none.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The variable `name` reads: the prefix, then the name in upper case
    /// with `/`, `.` and `-` turned into `_`.
    pub fn variable_for(&self, name: &SecretName) -> String {
        let mut variable = String::with_capacity(self.prefix.len() + name.as_str().len());
        variable.push_str(&self.prefix);
        variable.extend(name.as_str().chars().map(|c| match c {
            '/' | '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        }));
        variable
    }

    /// The canonical name of `variable` (see the [module docs](self)), or
    /// `None` if the variable lacks the prefix or no name maps to it.
    pub fn name_for(&self, variable: &str) -> Option<SecretName> {
        let rest = variable.strip_prefix(self.prefix.as_str())?;
        if rest.is_empty()
            || !rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        let mut canonical = rest.to_ascii_lowercase();
        // The first '_' with a character on both sides separates the service
        // from the rest; a leading or trailing '_' would make an empty segment.
        let bytes = canonical.as_bytes();
        if let Some(i) = (1..bytes.len().saturating_sub(1)).find(|&i| bytes[i] == b'_') {
            canonical.replace_range(i..=i, "/");
        }
        let name = SecretName::new(canonical).ok()?;
        // Only names that lead back to this very variable are canonical.
        (self.variable_for(&name) == variable).then_some(name)
    }

    fn prefixed(mut self, prefix: String) -> Result<Self> {
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::InvalidOption {
                store: self.name.clone(),
                option: "prefix".to_string(),
                problem: format!("{prefix:?} may hold only A-Z a-z 0-9 _"),
            });
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// The value of `variable`, if it is set.
    fn read(&self, variable: &str) -> Result<Option<SecretValue>> {
        match &self.source {
            Source::Map(map) => Ok(map.get(variable).map(|v| SecretValue::copy_from(v))),
            Source::Process => match std::env::var_os(variable) {
                Some(value) => self.value_of(value, variable).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Every variable's name (values are not read).
    fn variables(&self) -> Vec<String> {
        match &self.source {
            Source::Map(map) => map.keys().cloned().collect(),
            // Non-Unicode variable names cannot be produced by any secret name.
            Source::Process => std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .collect(),
        }
    }

    #[cfg(unix)]
    fn value_of(&self, value: OsString, _variable: &str) -> Result<SecretValue> {
        use std::os::unix::ffi::OsStringExt;
        // into_vec hands over the buffer without a copy; SecretValue owns
        // (and wipes) it from here.
        Ok(SecretValue::from(value.into_vec()))
    }

    #[cfg(not(unix))]
    fn value_of(&self, value: OsString, variable: &str) -> Result<SecretValue> {
        // Elsewhere the environment is UTF-16; only Unicode values have a
        // faithful byte form.
        match value.into_string() {
            Ok(text) => Ok(SecretValue::from(text)),
            Err(_) => Err(Error::Malformed {
                what: format!("{}: the value of {variable}", self.name),
                problem: "is not valid Unicode".to_string(),
            }),
        }
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }

    fn read_only(&self) -> Error {
        Error::ReadOnly {
            store: self.name.clone(),
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Env {
    /// Shows where the store reads, never a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Process => "process environment".to_string(),
            Source::Map(map) => format!("map of {} variables", map.len()),
        };
        f.debug_struct("Env")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("source", &source)
            .finish()
    }
}

impl Store for Env {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: true,
            list: true,
            ..Capabilities::default()
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        let variable = self.variable_for(name);
        match selector {
            Selector::Label(Label::Current) | Selector::Version(1) => {}
            Selector::Version(v) => {
                return Err(self.not_found(format!(
                    "'{name}' version {v} (variable {variable} has only version 1)"
                )));
            }
            Selector::Label(Label::Previous | Label::Pending) => {
                return Err(self.unsupported("labels other than current"));
            }
        }
        match self.read(&variable)? {
            Some(value) => Ok(Secret {
                name: name.clone(),
                version: 1,
                value,
            }),
            None => Err(self.not_found(format!("'{name}' (variable {variable})"))),
        }
    }

    fn put(&mut self, _: &SecretName, _: &SecretValue, _: &PutOptions) -> Result<u64> {
        Err(self.read_only())
    }

    fn delete(&mut self, _: &SecretName, _: DeleteMode) -> Result<()> {
        Err(self.read_only())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let mut out: Vec<SecretInfo> = self
            .variables()
            .iter()
            .filter_map(|variable| self.name_for(variable))
            .filter(|name| name.starts_with(prefix))
            // The environment keeps no times.
            .map(SecretInfo::single)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn health(&mut self) -> Health {
        let source = match &self.source {
            Source::Process => "the process environment",
            Source::Map(_) => "a fixed map of variables",
        };
        let prefix = if self.prefix.is_empty() {
            "no prefix".to_string()
        } else {
            format!("prefix {}", self.prefix)
        };
        Health {
            reachable: true,
            authenticated: true,
            detail: format!("reads {source}, {prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    fn vars(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn names_map_to_variables_through_the_template() {
        let env = Env::new();
        assert_eq!(env.variable_for(&name("openai/api_key")), "OPENAI_API_KEY");
        assert_eq!(
            env.variable_for(&name("db.prod/pass-word")),
            "DB_PROD_PASS_WORD"
        );
        let forge = Env::with_prefix("MODEL_FORGE_").unwrap();
        assert_eq!(
            forge.variable_for(&name("openai/api_key")),
            "MODEL_FORGE_OPENAI_API_KEY"
        );
        assert_eq!(forge.prefix(), "MODEL_FORGE_");
    }

    #[test]
    fn variables_map_back_to_canonical_names() {
        let env = Env::new();
        for (variable, canonical) in [
            ("OPENAI_API_KEY", "openai/api_key"),
            ("SERVICE_REST", "service/rest"),
            ("TOKEN", "token"),
            ("_X_Y", "_x/y"),
            ("X_", "x_"),
            ("A__B", "a/_b"),
            ("HF_TOKEN2", "hf/token2"),
        ] {
            let got = env.name_for(variable).unwrap();
            assert_eq!(got.as_str(), canonical, "{variable}");
            assert_eq!(env.variable_for(&got), variable);
        }
        for unreachable in ["", "http_proxy", "A-B", "A.B", "A=B", "Ä"] {
            assert_eq!(env.name_for(unreachable), None, "{unreachable}");
        }
        let forge = Env::with_prefix("MODEL_FORGE_").unwrap();
        assert_eq!(
            forge
                .name_for("MODEL_FORGE_OPENAI_API_KEY")
                .unwrap()
                .as_str(),
            "openai/api_key"
        );
        assert_eq!(forge.name_for("OPENAI_API_KEY"), None);
        assert_eq!(forge.name_for("MODEL_FORGE_"), None);
    }

    #[test]
    fn every_name_that_maps_to_a_variable_reads_it() {
        let mut env = Env::from_map(vars(&[("DB_PROD_PASSWORD", b"pw")]));
        for alias in ["db/prod_password", "db.prod/password", "DB/PROD-PASSWORD"] {
            let secret = env.get(&name(alias), Selector::default()).unwrap();
            assert_eq!(secret.name.as_str(), alias);
            assert_eq!(secret.version, 1);
            assert_eq!(secret.value.expose_secret(), b"pw");
        }
        let listed: Vec<_> = env.list("").unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(listed, [name("db/prod_password")]);
        assert!(env.list("db.prod/").unwrap().is_empty());
        assert_eq!(env.list("db/").unwrap().len(), 1);
    }

    #[test]
    fn list_keeps_to_the_prefix_and_skips_unreachable_variables() {
        let mut env = Env::from_map_with_prefix(
            vars(&[
                ("APP_OPENAI_API_KEY", b"a"),
                ("APP_HF_TOKEN", b"b"),
                ("APP_lower", b"c"),
                ("OTHER_KEY", b"d"),
                ("APP_", b"e"),
            ]),
            "APP_",
        )
        .unwrap();
        let listed: Vec<String> = env
            .list("")
            .unwrap()
            .into_iter()
            .map(|i| i.name.into())
            .collect();
        assert_eq!(listed, ["hf/token", "openai/api_key"]);
        assert_eq!(env.list("openai").unwrap().len(), 1);
        assert!(env.list("other").unwrap().is_empty());
    }

    #[test]
    fn selectors_other_than_current_or_version_one() {
        let mut env = Env::from_map(vars(&[("A_B", b"v")]));
        let n = name("a/b");
        assert_eq!(env.get(&n, Selector::Version(1)).unwrap().version, 1);
        let err = env.get(&n, Selector::Version(2)).unwrap_err();
        assert_eq!(err.kind(), "not_found", "{err}");
        assert!(err.to_string().contains("only version 1"), "{err}");
        for label in [Label::Previous, Label::Pending] {
            let err = env.get(&n, Selector::Label(label)).unwrap_err();
            assert_eq!(err.kind(), "unsupported", "{err}");
        }
        let err = env.get(&name("a/c"), Selector::default()).unwrap_err();
        assert_eq!(err.to_string(), "env: 'a/c' (variable A_C) not found");
    }

    #[test]
    fn writes_are_read_only() {
        let mut env = Env::new().named("ci-env");
        let n = name("a/b");
        let err = env
            .put(&n, &SecretValue::copy_from(b"x"), &PutOptions::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "ci-env is read-only");
        assert_eq!(
            env.delete(&n, DeleteMode::Purge).unwrap_err().kind(),
            "read_only"
        );
        assert_eq!(env.undelete(&n).unwrap_err().kind(), "unsupported");
        assert_eq!(env.history(&n).unwrap_err().kind(), "unsupported");
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for bad in ["A=B", "A B", "A\0", "Ä_"] {
            let err = Env::with_prefix(bad).unwrap_err();
            assert_eq!(err.kind(), "invalid_option", "{bad:?}");
        }
        assert!(Env::with_prefix("").is_ok());
    }

    #[test]
    fn debug_shows_no_values() {
        let env = Env::from_map(vars(&[("A", b"canary-value")]));
        let shown = format!("{env:?}");
        assert!(!shown.contains("canary-value"), "{shown}");
        assert!(shown.contains("map of 1 variables"), "{shown}");
    }

    #[test]
    fn reads_the_process_environment() {
        // Reading is safe; the test only reads variables the harness sets.
        let mut env = Env::new();
        let health = env.health();
        assert!(health.reachable && health.authenticated);
        if let Some(path) = std::env::var_os("PATH") {
            let secret = env.get(&name("path"), Selector::default()).unwrap();
            assert_eq!(secret.value.expose_secret(), path.as_encoded_bytes());
            assert!(
                env.list("pa")
                    .unwrap()
                    .iter()
                    .any(|i| i.name.as_str() == "path")
            );
        }
        let err = env
            .get(
                &name("tresor_test/surely_unset_variable_0x5f"),
                Selector::default(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "not_found");
    }
}
