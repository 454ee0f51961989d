//! Bringing secrets in: reading the files users already keep secrets in
//! (the seeds' legacy JSON config and Fernet file, dtPyAppFramework
//! keystores and `secrets.yaml`, flat JSON, dotenv, `name=VAR` maps) into a
//! list of entries, checked before anything is written; the manager then
//! writes them all or nothing ([`crate::Tresor::import`]).
//!
//! Every entry carries the place it came from (a key path or a line), so a
//! bad entry is named without its value. Parse errors report a line and
//! column only: a parser's own message may quote the input, which may be a
//! value.
//!
//! ```
//! use tresor::import::{self, Format, ReadOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("creds.json");
//! std::fs::write(&file, r#"{"openai/api_key": "sk-1", "db/password": "pw"}"#)?;
//! let plan = import::read(Format::Json, &file, &ReadOptions::default())?;
//! assert_eq!(plan.entries.len(), 2);
//! assert_eq!(plan.counts(), vec![("db".to_string(), 1), ("openai".to_string(), 1)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use tresor_core::{Error, Result, SecretName, SecretValue};

pub mod bundle;
mod formats;
#[cfg(test)]
mod tests;

pub use formats::{Place, map_name, shred};

/// The start of the problem text of an entry whose value is empty (the CLI
/// adds how to allow it).
pub const EMPTY_VALUE: &str = "the value is empty";
/// The start of the problem text of an entry whose name tresor cannot
/// accept (the CLI adds how to map it).
pub const INVALID_NAME: &str = "the name is not a valid secret name";

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Seed 001's plaintext config: `providers.<p>.credentials.<k>` → `p/k`.
    LegacyConfig,
    /// Seed 001's Fernet-encrypted `{"<p>.<k>": value}` file, with its key file.
    Fernet,
    /// A dtPyAppFramework `.v3keystore`, or the `data/` folder holding one.
    Dtpy,
    /// Seed 004's `secrets.yaml`.
    SecretsYaml,
    /// A flat JSON object of names to values.
    Json,
    /// A dotenv file.
    Dotenv,
    /// `name=VAR` lines: each value read from the environment.
    EnvMap,
}

impl Format {
    /// Every format, as the command line names them.
    pub const ALL: [Format; 7] = [
        Format::LegacyConfig,
        Format::Fernet,
        Format::Dtpy,
        Format::SecretsYaml,
        Format::Json,
        Format::Dotenv,
        Format::EnvMap,
    ];

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::LegacyConfig => "legacy-config",
            Format::Fernet => "fernet",
            Format::Dtpy => "dtpy",
            Format::SecretsYaml => "secrets-yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::EnvMap => "env-map",
        }
    }

    /// Parses a format name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

/// How to read a file.
#[derive(Default)]
pub struct ReadOptions {
    /// Put every name under this prefix (`app` → `app/NAME`).
    pub prefix: Option<String>,
    /// Map names tresor cannot accept to names it can, instead of refusing.
    pub rename_invalid: bool,
    /// Import empty values instead of refusing them.
    pub allow_empty: bool,
    /// The Fernet key file (format `fernet`).
    pub key_file: Option<PathBuf>,
    /// The keystore password (format `dtpy`), used verbatim; `None`: the
    /// framework's machine password.
    pub password: Option<Zeroizing<String>>,
    /// Format `dtpy`: the framework's settings too (entries not in its INDEX).
    pub all: bool,
    /// Format `env-map`: where values come from (`None`: the process
    /// environment).
    pub environment: Option<HashMap<String, Zeroizing<String>>>,
}

/// One secret to import.
pub struct Entry {
    /// The name it is written under (prefix and mapping applied).
    pub name: SecretName,
    /// The value.
    pub value: SecretValue,
    /// Where it came from: a key path (`providers.openai.credentials.api_key`)
    /// or a line (`line 4`).
    pub origin: String,
    /// The name as the file gave it, when it was mapped.
    pub renamed_from: Option<String>,
    /// Where it sits in the file (for [`rewrite`]).
    pub place: Place,
}

/// What a file holds, checked and ready to write.
pub struct Plan {
    /// The format read.
    pub format: Format,
    /// The file (or folder) read.
    pub source: PathBuf,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
    /// Things the user should know (a backup still holding plaintext, a
    /// file readable by others).
    pub warnings: Vec<String>,
}

impl Plan {
    /// How many entries per provider or prefix (the name's first segment),
    /// sorted by it.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in &self.entries {
            let group = e
                .name
                .as_str()
                .split_once('/')
                .map_or("(top level)", |(g, _)| g);
            *counts.entry(group.to_string()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// The entries as the (name, value) pairs a store writes, the values
    /// moved out of the plan (its entries keep their names, origins and
    /// places, all that [`rewrite`] and [`finish`] need): no second copy of
    /// every value, and none of its cost (a copy, a lock into RAM, a wipe)
    /// for a large import.
    pub fn take_items(&mut self) -> Vec<(SecretName, SecretValue)> {
        self.entries
            .iter_mut()
            .map(|e| {
                let value = std::mem::replace(&mut e.value, SecretValue::from(Vec::new()));
                (e.name.clone(), value)
            })
            .collect()
    }

    /// The entries as the (name, value) pairs a store writes.
    pub fn items(&self) -> Vec<(SecretName, SecretValue)> {
        self.entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    SecretValue::copy_from(e.value.expose_secret()),
                )
            })
            .collect()
    }
}

/// Reads and checks `path` as `format`: every name valid (or mapped),
/// no name twice, no empty value unless allowed. Nothing is written.
pub fn read(format: Format, path: &Path, options: &ReadOptions) -> Result<Plan> {
    let mut raw = formats::read_raw(format, path, options)?;
    let what = path.display().to_string();
    let mut entries = Vec::with_capacity(raw.entries.len());
    let mut seen: HashMap<String, String> = HashMap::with_capacity(raw.entries.len());
    for r in raw.entries.drain(..) {
        let (name, renamed_from) = name_for(&r.name, options, &what, &r.origin)?;
        if r.value.expose_secret().is_empty() && !options.allow_empty {
            return Err(Error::Malformed {
                what: format!("{what}: {}", r.origin),
                problem: format!("{EMPTY_VALUE} ('{name}'); nothing was imported"),
            });
        }
        if let Some(first) = seen.insert(name.as_str().to_string(), r.origin.clone()) {
            return Err(Error::Malformed {
                what: format!("{what}: {}", r.origin),
                problem: format!(
                    "'{name}' is given twice (first at {first}); nothing was imported"
                ),
            });
        }
        entries.push(Entry {
            name,
            value: r.value,
            origin: r.origin,
            renamed_from,
            place: r.place,
        });
    }
    Ok(Plan {
        format,
        source: path.to_path_buf(),
        entries,
        warnings: raw.warnings,
    })
}

/// The name an entry is written under.
fn name_for(
    raw: &str,
    options: &ReadOptions,
    what: &str,
    origin: &str,
) -> Result<(SecretName, Option<String>)> {
    let full = match options.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/{raw}"),
        _ => raw.to_string(),
    };
    match SecretName::new(full.clone()) {
        Ok(n) => Ok((n, None)),
        Err(e) => {
            let mapped = map_name(&full);
            match mapped {
                Some(m) if options.rename_invalid => Ok((m, Some(raw.to_string()))),
                Some(m) => Err(Error::Malformed {
                    what: format!("{what}: {origin}"),
                    problem: format!(
                        "{INVALID_NAME} ({}); it maps to '{m}'; nothing was imported",
                        problem_of(&e)
                    ),
                }),
                None => Err(Error::Malformed {
                    what: format!("{what}: {origin}"),
                    problem: format!(
                        "{INVALID_NAME} ({}) and maps to none; nothing was imported",
                        problem_of(&e)
                    ),
                }),
            }
        }
    }
}

fn problem_of(e: &Error) -> String {
    match e {
        Error::InvalidName { problem, .. } => problem.to_string(),
        other => other.to_string(),
    }
}

/// What happens to the source after a successful import, as the format
/// wants it: `legacy-config` is renamed to `<file>.json.backup` (or shredded
/// with `shred`); `secrets-yaml` is shredded and deleted. Returns what was
/// done, for the report.
pub fn finish(plan: &Plan, shred_source: bool) -> Result<Option<String>> {
    match plan.format {
        Format::LegacyConfig if shred_source => {
            shred(&plan.source)?;
            Ok(Some(format!(
                "{} shredded and removed",
                plan.source.display()
            )))
        }
        Format::LegacyConfig => {
            let backup = plan.source.with_extension("json.backup");
            std::fs::rename(&plan.source, &backup).map_err(|e| Error::Io {
                store: "import".into(),
                path: plan.source.clone(),
                source: e,
            })?;
            Ok(Some(format!(
                "{} renamed to {}; the backup still holds the plaintext values (remove it, or \
                 import with shredding)",
                plan.source.display(),
                backup.display()
            )))
        }
        Format::SecretsYaml => {
            shred(&plan.source)?;
            Ok(Some(format!(
                "{} shredded and removed",
                plan.source.display()
            )))
        }
        _ if shred_source => {
            shred(&plan.source)?;
            Ok(Some(format!(
                "{} shredded and removed",
                plan.source.display()
            )))
        }
        _ => Ok(None),
    }
}

/// Whether `format` can be rewritten with `SEC/` references (the plaintext
/// files programs still read: dotenv, legacy-config, json).
pub fn rewritable(format: Format) -> bool {
    matches!(format, Format::Dotenv | Format::LegacyConfig | Format::Json)
}

/// Replaces each imported value in the source file by its `SEC/<name>`
/// reference, so a program that reads the file keeps working through
/// tresor and no plaintext stays in it. The new text goes to a temporary
/// file beside it (same mode); the old file is overwritten with random
/// bytes before the new one is renamed over it.
pub fn rewrite(plan: &Plan) -> Result<()> {
    let path = &plan.source;
    let old = formats::read_file(path, 512 * 1024 * 1024)?;
    let new: Zeroizing<Vec<u8>> = match plan.format {
        Format::Dotenv => {
            let text = std::str::from_utf8(&old).map_err(|_| Error::Malformed {
                what: path.display().to_string(),
                problem: "not UTF-8 text".into(),
            })?;
            let lines: Vec<&str> = text.split('\n').collect();
            let mut by_first: HashMap<usize, (usize, String, &SecretName)> = HashMap::new();
            for e in &plan.entries {
                if let Place::Lines(first, last, key) = &e.place {
                    by_first.insert(*first, (*last, key.clone(), &e.name));
                }
            }
            let mut out = Zeroizing::new(String::with_capacity(text.len()));
            let mut n = 1;
            while n <= lines.len() {
                if let Some((last, key, name)) = by_first.get(&n) {
                    let export = if lines[n - 1].trim_start().starts_with("export ") {
                        "export "
                    } else {
                        ""
                    };
                    out.push_str(&format!("{export}{key}=SEC/{name}"));
                    n = last + 1;
                } else {
                    out.push_str(lines[n - 1]);
                    n += 1;
                }
                if n <= lines.len() {
                    out.push('\n');
                }
            }
            Zeroizing::new(std::mem::take(&mut *out).into_bytes())
        }
        Format::Json | Format::LegacyConfig => {
            let mut doc: serde_json::Value =
                serde_json::from_slice(&old).map_err(|e| Error::Malformed {
                    what: path.display().to_string(),
                    problem: format!("line {} column {}: invalid JSON", e.line(), e.column()),
                })?;
            for e in &plan.entries {
                if let Place::Keys(keys) = &e.place {
                    let pointer: String = keys
                        .iter()
                        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
                        .collect();
                    let Some(at) = doc.pointer_mut(&pointer) else {
                        continue;
                    };
                    if let serde_json::Value::String(s) = at {
                        zeroize::Zeroize::zeroize(s);
                    }
                    *at = serde_json::Value::String(format!("SEC/{}", e.name));
                }
            }
            let mut out = Zeroizing::new(Vec::new());
            serde_json::to_writer_pretty(&mut *out, &doc).expect("serializes");
            out.push(b'\n');
            formats::wipe_json(&mut doc);
            out
        }
        other => {
            return Err(Error::Validation(format!(
                "{} files are not rewritten (only dotenv, legacy-config and json)",
                other.as_str()
            )));
        }
    };
    formats::replace_file(path, &new)
}
