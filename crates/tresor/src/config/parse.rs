//! The parser of `tresor.toml`: every problem with its line and column,
//! and the valid rest kept (for `tresor config check`).

use super::*;

/// Top-level keys other features read (`pkcs11`, the allowed PKCS#11
/// modules, read from the user's own config only by `pkcs11_allow`):
/// accepted here, checked by those features.
const OTHER_TOP_LEVEL: [&str; 1] = ["pkcs11"];
/// Keys of a `[[stores]]` entry the manager reads; the rest are the store's
/// own options.
const STORE_KEYS: [&str; 6] = ["name", "kind", "priority", "read_only", "required", "cache"];

/// Parses config text into the valid part and every problem, sorted by
/// position (see [`Config::parse_lenient`]).
pub(super) fn parse(text: &str, path: Option<&Path>) -> (Config, Vec<Problem>) {
    let mut p = Parser {
        text,
        file: path.map(Path::to_path_buf),
        problems: Vec::new(),
        declared: BTreeSet::new(),
        named_at: BTreeMap::new(),
        profile_secrets: BTreeMap::new(),
    };
    let config = p.document();
    p.problems.sort_by_key(|x| (x.line, x.column));
    (config, p.problems)
}

pub(super) struct Parser<'t> {
    text: &'t str,
    file: Option<PathBuf>,
    problems: Vec<Problem>,
    /// Every store name given, valid entry or not.
    declared: BTreeSet<String>,
    /// Where each profile names each store.
    named_at: BTreeMap<(String, String), Position>,
    /// Each profile's `secrets` entries, merged once the top level's are known.
    profile_secrets: BTreeMap<String, Vec<secrets::RawSecret>>,
}

impl Parser<'_> {
    pub(super) fn position(&self, offset: usize) -> Position {
        position_in(self.text, offset)
    }

    pub(super) fn problem(&mut self, offset: usize, message: impl Into<String>) {
        let at = self.position(offset);
        self.problems.push(Problem {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    fn document(&mut self) -> Config {
        let mut config = Config {
            path: self.file.clone(),
            ..Config::default()
        };
        let (root, errors) = DeTable::parse_recoverable(self.text);
        for e in errors {
            let offset = e.span().map_or(0, |s| s.start);
            let message = format!("TOML syntax: {}", e.message().trim());
            self.problem(offset, message);
        }
        let root = root.into_inner();
        let mut profile_default: Option<Spanned<String>> = None;
        let mut top_secrets = Vec::new();
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "profile" => match value.get_ref() {
                    DeValue::String(s) => {
                        profile_default = Some(Spanned::new(value.span(), s.to_string()))
                    }
                    other => self.problem(
                        value.span().start,
                        format!("profile must be a string, not {}", other.type_str()),
                    ),
                },
                "stores" => self.stores(value, &mut config),
                "profiles" => self.profiles(value, &mut config),
                "secrets" => top_secrets = self.secrets(value, "secrets"),
                "rules" => self.rules(value, &mut config),
                k if OTHER_TOP_LEVEL.contains(&k) => {}
                k => self.problem(
                    key.span().start,
                    format!(
                        "unknown top-level key '{k}' (expected profile, stores, profiles, secrets, rules or pkcs11)"
                    ),
                ),
            }
        }
        // Cross references, now that every store and profile is known.
        let mut later = Vec::new();
        let (declared, per_profile, problems) = secrets::merge(&top_secrets, &self.profile_secrets);
        later.extend(problems);
        config.secrets = declared;
        for (pname, list) in per_profile {
            if let Some(p) = config.profiles.get_mut(&pname) {
                p.secrets = list;
            }
        }
        for (pname, profile) in &config.profiles {
            for s in &profile.stores {
                if !self.declared.contains(s) {
                    later.push((
                        self.named_at[&(pname.clone(), s.clone())],
                        format!("profile '{pname}' names store '{s}', which is not defined"),
                    ));
                }
            }
        }
        if let Some(p) = profile_default {
            if config.profiles.contains_key(p.get_ref()) {
                config.profile = Some(p.get_ref().clone());
            } else {
                later.push((
                    self.position(p.span().start),
                    format!(
                        "profile = \"{}\" names no [profiles.{}] table",
                        p.get_ref(),
                        p.get_ref()
                    ),
                ));
            }
        }
        for (at, message) in later {
            self.problems.push(config.problem(at, message));
        }
        config
    }

    fn rules(&mut self, value: &Spanned<DeValue<'_>>, config: &mut Config) {
        let text = self.text;
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "tresor.toml".to_string(), |p| p.display().to_string());
        let position = |offset: usize| position_in(text, offset);
        let mut found = Vec::new();
        super::rules::parse_rules(
            value,
            &file,
            &position,
            &mut |offset, message| found.push((offset, message)),
            &mut config.rules,
        );
        for (offset, message) in found {
            self.problem(offset, message);
        }
    }

    fn stores(&mut self, value: &Spanned<DeValue<'_>>, config: &mut Config) {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span().start,
                "stores must be an array of tables: write each store as [[stores]]",
            );
            return;
        };
        let mut seen: BTreeMap<String, Position> = BTreeMap::new();
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                self.problem(item.span().start, "each entry of stores must be a table");
                continue;
            };
            let name = match table.get("name").map(|v| (v.span(), v.get_ref())) {
                Some((span, DeValue::String(s))) => Some((span, s.to_string())),
                _ => None,
            };
            let mut duplicate = false;
            if let Some((span, name)) = &name {
                if let Some(first) = seen.get(name) {
                    let message = format!(
                        "duplicate store name '{name}' (first defined at line {})",
                        first.line
                    );
                    self.problem(span.start, message);
                    duplicate = true;
                } else {
                    let at = self.position(item.span().start);
                    seen.insert(name.clone(), at);
                    self.declared.insert(name.clone());
                }
            }
            // A duplicate is still checked, so every problem shows at once.
            if let Some(store) = self.store(item.span().start, table, config)
                && !duplicate
            {
                config.stores.push(store);
            }
        }
    }

    fn store(
        &mut self,
        start: usize,
        table: &DeTable<'_>,
        config: &mut Config,
    ) -> Option<StoreConfig> {
        let at = self.position(start);
        let name = match table.get("name").map(|v| (v.span(), v.get_ref())) {
            Some((span, DeValue::String(s))) => {
                if valid_store_name(s) {
                    Some(s.to_string())
                } else {
                    self.problem(
                        span.start,
                        format!("store name {s:?} is not valid: use 1 to 64 of A-Z a-z 0-9 . _ -"),
                    );
                    None
                }
            }
            Some((span, other)) => {
                self.problem(
                    span.start,
                    format!("name must be a string, not {}", other.type_str()),
                );
                None
            }
            None => {
                self.problem(start, "this store has no name (add name = \"…\")");
                None
            }
        };
        let label = name.clone().unwrap_or_else(|| "?".into());
        let kind = match table.get("kind").map(|v| (v.span(), v.get_ref())) {
            Some((span, DeValue::String(s))) => match StoreKind::parse(s) {
                Some(k) => Some(k),
                None => {
                    self.problem(
                        span.start,
                        format!(
                            "store '{label}': unknown kind {s:?} (expected one of: {})",
                            StoreKind::ALL.map(StoreKind::as_str).join(", ")
                        ),
                    );
                    None
                }
            },
            Some((span, other)) => {
                self.problem(
                    span.start,
                    format!(
                        "store '{label}': kind must be a string, not {}",
                        other.type_str()
                    ),
                );
                None
            }
            None => {
                self.problem(
                    start,
                    format!(
                        "store '{label}' has no kind (vault, keychain, env, openbao, aws or azure)"
                    ),
                );
                None
            }
        };
        let priority = match table.get("priority") {
            None => DEFAULT_PRIORITY,
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => {
                    match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                        Ok(n) if (0..=MAX_PRIORITY).contains(&n) => n,
                        _ => {
                            self.problem(
                            v.span().start,
                            format!(
                                "store '{label}': priority must be a whole number from 0 to {MAX_PRIORITY}"
                            ),
                        );
                            DEFAULT_PRIORITY
                        }
                    }
                }
                other => {
                    self.problem(
                        v.span().start,
                        format!(
                            "store '{label}': priority must be a whole number from 0 to {MAX_PRIORITY}, not {}",
                            other.type_str()
                        ),
                    );
                    DEFAULT_PRIORITY
                }
            },
        };
        let mut flag = |key: &str| -> bool {
            match table.get(key) {
                None => false,
                Some(v) => match v.get_ref() {
                    DeValue::Boolean(b) => *b,
                    other => {
                        self.problem(
                            v.span().start,
                            format!(
                                "store '{label}': {key} must be true or false, not {}",
                                other.type_str()
                            ),
                        );
                        false
                    }
                },
            }
        };
        let read_only = flag("read_only");
        let required = flag("required");
        let cache = flag("cache");
        let mut options = BTreeMap::new();
        for (key, value) in table.iter() {
            let key_text = key.get_ref().as_ref();
            if STORE_KEYS.contains(&key_text) {
                continue;
            }
            let text = match value.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_string(),
                DeValue::Float(f) => f.as_str().to_string(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    self.problem(
                        value.span().start,
                        format!(
                            "store '{label}': option '{key_text}' must be a string, number or boolean, not {}",
                            other.type_str()
                        ),
                    );
                    continue;
                }
            };
            match OptionValue::parse(&text) {
                Ok(v) => {
                    options.insert(key_text.to_string(), v);
                }
                Err(e) => self.problem(
                    value.span().start,
                    format!("store '{label}': option '{key_text}': {e}"),
                ),
            }
            let pos = self.position(key.span().start);
            config
                .option_at
                .insert((label.clone(), key_text.to_string()), pos);
        }
        let kind = kind?;
        if cache && !kind.is_remote() {
            let offset = table.get("cache").map_or(start, |v| v.span().start);
            self.problem(
                offset,
                format!(
                    "store '{label}': cache = true is for remote stores (openbao, aws, azure), not {kind}"
                ),
            );
        }
        Some(StoreConfig {
            name: name?,
            kind,
            priority,
            read_only,
            required,
            cache,
            options,
            at,
        })
    }

    fn profiles(&mut self, value: &Spanned<DeValue<'_>>, config: &mut Config) {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span().start,
                "profiles must be a table of [profiles.NAME] tables",
            );
            return;
        };
        for (key, value) in table.iter() {
            let pname = key.get_ref().to_string();
            let DeValue::Table(body) = value.get_ref() else {
                self.problem(
                    value.span().start,
                    format!("profile '{pname}' must be a table: [profiles.{pname}]"),
                );
                continue;
            };
            for (k, v) in body.iter() {
                match k.get_ref().as_ref() {
                    "stores" => {}
                    "secrets" => {
                        let owner = format!("profiles.{pname}.secrets");
                        let entries = self.secrets(v, &owner);
                        self.profile_secrets.insert(pname.clone(), entries);
                    }
                    other => self.problem(
                        k.span().start,
                        format!(
                            "profile '{pname}': unknown key '{other}' (expected stores or secrets)"
                        ),
                    ),
                }
            }
            let Some(list) = body.get("stores") else {
                self.problem(
                    key.span().start,
                    format!("profile '{pname}' has no stores = [\"…\"] list"),
                );
                continue;
            };
            let at = self.position(list.span().start);
            let DeValue::Array(items) = list.get_ref() else {
                self.problem(
                    list.span().start,
                    format!("profile '{pname}': stores must be a list of store names"),
                );
                continue;
            };
            let mut stores = Vec::new();
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) if !stores.contains(&s.to_string()) => {
                        let at = self.position(item.span().start);
                        self.named_at.insert((pname.clone(), s.to_string()), at);
                        stores.push(s.to_string())
                    }
                    DeValue::String(s) => self.problem(
                        item.span().start,
                        format!("profile '{pname}' names store '{s}' twice"),
                    ),
                    other => self.problem(
                        item.span().start,
                        format!(
                            "profile '{pname}': stores must hold store names, not {}",
                            other.type_str()
                        ),
                    ),
                }
            }
            if stores.is_empty() && items.iter().next().is_none() {
                self.problem(
                    list.span().start,
                    format!("profile '{pname}' uses no store"),
                );
            }
            config.profile_at.insert(pname.clone(), at);
            config.profiles.insert(
                pname,
                Profile {
                    stores,
                    secrets: Vec::new(),
                },
            );
        }
    }
}

/// The line and column of byte `offset` in `text`.
fn position_in(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position { line, column }
}
