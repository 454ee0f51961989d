//! The readers, one per format: each turns a file into raw entries (name as
//! the file gives it, value, origin). Names are checked by the caller.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path};

use serde_json::Value;
use zeroize::{Zeroize as _, Zeroizing};

use tresor_core::{Error, Result, SecretName, SecretValue};

use super::{Format, ReadOptions};

/// Largest file an import reads (a hostile size is refused, not read).
const MAX_IMPORT_FILE: u64 = 512 * 1024 * 1024;
/// The framework's limit for `secrets.yaml` and for a `file:` it names.
const MAX_YAML_FILE: u64 = 10 * 1024 * 1024;
const MAX_YAML_VALUE_FILE: u64 = 64 * 1024;

pub(super) struct RawEntry {
    pub name: String,
    pub value: SecretValue,
    pub origin: String,
    /// Where the entry sits in the file, for `rewrite`: dotenv lines
    /// (first, last, 1-based), or the JSON key path.
    pub place: Place,
}

/// Where an entry sits in its file.
#[derive(Clone, Debug, Default)]
pub enum Place {
    /// Not rewritable.
    #[default]
    None,
    /// Dotenv lines `first..=last` (1-based) holding `KEY`.
    Lines(usize, usize, String),
    /// A JSON object key path.
    Keys(Vec<String>),
}

pub(super) struct Raw {
    pub entries: Vec<RawEntry>,
    pub warnings: Vec<String>,
}

pub(super) fn read_raw(format: Format, path: &Path, options: &ReadOptions) -> Result<Raw> {
    let mut warnings = Vec::new();
    let entries = match format {
        Format::Json => json_flat(path)?,
        Format::LegacyConfig => legacy_config(path)?,
        Format::Dotenv => dotenv(path)?,
        Format::EnvMap => env_map(path, options)?,
        Format::SecretsYaml => secrets_yaml(path, &mut warnings)?,
        Format::Fernet => fernet(path, options)?,
        Format::Dtpy => dtpy(path, options)?,
    };
    Ok(Raw { entries, warnings })
}

// ------------------------------------------------------------------ helpers

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        store: "import".into(),
        path: path.to_path_buf(),
        source: e,
    }
}

fn malformed(path: &Path, problem: impl Into<String>) -> Error {
    Error::Malformed {
        what: path.display().to_string(),
        problem: problem.into(),
    }
}

/// Reads a file whole, into a buffer wiped on drop, refusing more than `cap`.
pub(super) fn read_file(path: &Path, cap: u64) -> Result<Zeroizing<Vec<u8>>> {
    let f = File::open(path).map_err(|e| io(path, e))?;
    let mut out = Zeroizing::new(Vec::new());
    f.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| io(path, e))?;
    if out.len() as u64 > cap {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            limit: cap,
        });
    }
    Ok(out)
}

fn text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        malformed(path, format!("line {line}: not UTF-8 text"))
    })
}

/// A parsed JSON document whose strings are wiped on drop.
struct Json(Value);

impl Drop for Json {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

pub(super) fn wipe_json(v: &mut Value) {
    wipe(v);
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(o) => o.values_mut().for_each(wipe),
        _ => {}
    }
}

/// Parses JSON, reporting only where it broke (serde_json's messages may
/// quote the input).
fn parse_json(path: &Path, bytes: &[u8]) -> Result<Json> {
    serde_json::from_slice(bytes)
        .map(Json)
        .map_err(|e| json_error(path, &e))
}

/// Where and how the JSON broke (never serde_json's message: it may quote
/// the input).
fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "the JSON ends early",
        serde_json::error::Category::Syntax => "invalid JSON",
        _ => "unexpected JSON",
    };
    malformed(
        path,
        format!("line {} column {}: {what}", e.line(), e.column()),
    )
}

/// A JSON scalar as a value: strings as their text, numbers and booleans as
/// their JSON text; `None` for anything else.
fn scalar(v: &Value) -> Option<SecretValue> {
    match v {
        Value::String(s) => Some(SecretValue::copy_from(s.as_bytes())),
        Value::Number(_) | Value::Bool(_) => Some(SecretValue::from(v.to_string().into_bytes())),
        _ => None,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// -------------------------------------------------------------------- json

fn json_flat(path: &Path) -> Result<Vec<RawEntry>> {
    let bytes = read_file(path, MAX_IMPORT_FILE)?;
    // Straight into entries: no JSON tree of 100k strings to build, wipe and
    // free (a tenth of a large import's time went there).
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let top = serde::Deserializer::deserialize_any(&mut de, FlatTop)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|e| json_error(path, &e))?;
    drop(bytes);
    let mut pairs = match top {
        FlatTopValue::Object(pairs) => pairs,
        FlatTopValue::Not(kind) => {
            return Err(malformed(
                path,
                format!("the file holds {kind}, not an object of names to values"),
            ));
        }
    };
    // As a JSON object reads: names in order, the last of a repeated name
    // wins (the stable sort keeps repeats in file order).
    pairs.sort_by(|x, y| x.0.cmp(&y.0));
    let mut out: Vec<RawEntry> = Vec::with_capacity(pairs.len());
    let mut pairs = pairs.into_iter().peekable();
    while let Some((k, v)) = pairs.next() {
        if pairs.peek().is_some_and(|next| next.0 == k) {
            continue;
        }
        let value = match v {
            FlatValue::Scalar(value) => value,
            FlatValue::Not(kind) => {
                return Err(malformed(
                    path,
                    format!("key '{}': the value is {kind}, not a string", shorten(&k)),
                ));
            }
        };
        out.push(RawEntry {
            origin: format!("key '{}'", shorten(&k)),
            place: Place::Keys(vec![k.clone()]),
            name: k,
            value,
        });
    }
    Ok(out)
}

/// A flat JSON file read by [`json_flat`]: its object's pairs in file
/// order, or what the file holds instead of an object.
enum FlatTopValue {
    Object(Vec<(String, FlatValue)>),
    Not(&'static str),
}

/// A value of a flat JSON object: a scalar as a secret's value (strings as
/// their text, numbers and booleans as their JSON text, as [`scalar`]
/// makes them), or what else it is.
enum FlatValue {
    Scalar(SecretValue),
    Not(&'static str),
}

struct FlatTop;

impl<'de> serde::de::Visitor<'de> for FlatTop {
    type Value = FlatTopValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(FlatValueSeed)?;
            pairs.push((key, value));
        }
        Ok(FlatTopValue::Object(pairs))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(FlatTopValue::Not("an array"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("null"))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("a boolean"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("a number"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("a number"))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        Ok(FlatTopValue::Not("a string"))
    }

    fn visit_string<E: serde::de::Error>(
        self,
        mut s: String,
    ) -> std::result::Result<Self::Value, E> {
        s.zeroize();
        Ok(FlatTopValue::Not("a string"))
    }
}

struct FlatValueSeed;

impl<'de> serde::de::DeserializeSeed<'de> for FlatValueSeed {
    type Value = FlatValue;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<FlatValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FlatValueSeed {
    type Value = FlatValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<FlatValue, E> {
        Ok(FlatValue::Scalar(SecretValue::copy_from(s.as_bytes())))
    }

    fn visit_string<E: serde::de::Error>(self, mut s: String) -> std::result::Result<FlatValue, E> {
        let value = SecretValue::copy_from(s.as_bytes());
        s.zeroize();
        Ok(FlatValue::Scalar(value))
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> std::result::Result<FlatValue, E> {
        Ok(FlatValue::Scalar(SecretValue::copy_from(
            if b { "true" } else { "false" }.as_bytes(),
        )))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<FlatValue, E> {
        Ok(number(Value::from(n)))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<FlatValue, E> {
        Ok(number(Value::from(n)))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> std::result::Result<FlatValue, E> {
        Ok(number(Value::from(n)))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<FlatValue, E> {
        Ok(FlatValue::Not("null"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<FlatValue, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(FlatValue::Not("an array"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<FlatValue, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(FlatValue::Not("an object"))
    }
}

/// A number's JSON text, as [`scalar`] writes it.
fn number(v: Value) -> FlatValue {
    match scalar(&v) {
        Some(value) => FlatValue::Scalar(value),
        None => FlatValue::Not("a number"),
    }
}

// ----------------------------------------------------------- legacy-config

fn legacy_config(path: &Path) -> Result<Vec<RawEntry>> {
    let bytes = read_file(path, MAX_IMPORT_FILE)?;
    let doc = parse_json(path, &bytes)?;
    let Value::Object(root) = &doc.0 else {
        return Err(malformed(path, "the file holds no JSON object"));
    };
    let providers = match root.get("providers") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(malformed(
                path,
                format!("providers: is {}, not an object", kind_of(other)),
            ));
        }
        None => {
            return Err(malformed(
                path,
                "no \"providers\" object (not a legacy config)",
            ));
        }
    };
    let mut out = Vec::new();
    for (provider, data) in providers {
        let place = format!("providers.{}", shorten(provider));
        let creds = match data.get("credentials") {
            Some(Value::Object(c)) => c,
            None => continue,
            Some(other) => {
                return Err(malformed(
                    path,
                    format!("{place}.credentials: is {}, not an object", kind_of(other)),
                ));
            }
        };
        for (key, v) in creds {
            let origin = format!("{place}.credentials.{}", shorten(key));
            let value = scalar(v).ok_or_else(|| {
                malformed(
                    path,
                    format!("{origin}: the value is {}, not a string", kind_of(v)),
                )
            })?;
            out.push(RawEntry {
                name: format!("{provider}/{key}"),
                value,
                origin,
                place: Place::Keys(vec![
                    "providers".into(),
                    provider.clone(),
                    "credentials".into(),
                    key.clone(),
                ]),
            });
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ dotenv

fn dotenv(path: &Path) -> Result<Vec<RawEntry>> {
    let bytes = read_file(path, MAX_IMPORT_FILE)?;
    let text = text(path, &bytes)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let line = lines[i].trim_end_matches('\r');
        i += 1;
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").map_or(l, str::trim_start);
        let Some((key, rest)) = l.split_once('=') else {
            return Err(malformed(
                path,
                format!("line {start}: no '=' (expected KEY=VALUE)"),
            ));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
        {
            return Err(malformed(
                path,
                format!("line {start}: the key is not a variable name"),
            ));
        }
        let rest = rest.trim_start();
        let mut value = Zeroizing::new(String::new());
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            // A quoted value, possibly over several lines.
            let mut body = &rest[1..];
            loop {
                match close_quote(body, q, &mut value) {
                    Some(after) => {
                        let after = after.trim();
                        if !after.is_empty() && !after.starts_with('#') {
                            return Err(malformed(
                                path,
                                format!(
                                    "line {}: text after the closing quote of the value that \
                                     starts at line {start}",
                                    i
                                ),
                            ));
                        }
                        break;
                    }
                    None if i < lines.len() => {
                        value.push('\n');
                        body = lines[i].trim_end_matches('\r');
                        i += 1;
                    }
                    None => {
                        return Err(malformed(
                            path,
                            format!("line {start}: the quoted value is never closed"),
                        ));
                    }
                }
            }
        } else {
            // Unquoted: up to a comment (" #"), trailing spaces trimmed.
            let end = rest
                .char_indices()
                .find(|&(j, c)| c == '#' && (j == 0 || rest[..j].ends_with([' ', '\t'])))
                .map_or(rest.len(), |(j, _)| j);
            value.push_str(rest[..end].trim_end());
        }
        out.push(RawEntry {
            name: key.to_string(),
            value: SecretValue::copy_from(value.as_bytes()),
            origin: format!("line {start}"),
            place: Place::Lines(start, i, key.to_string()),
        });
    }
    Ok(out)
}

/// Appends the quoted text of `body` up to the closing `q` to `value`;
/// returns what follows the closing quote, or `None` if the line ends first.
/// Double quotes take `\n \r \t \" \\ \$` escapes; single quotes none.
fn close_quote<'a>(body: &'a str, q: char, value: &mut String) -> Option<&'a str> {
    let mut chars = body.char_indices();
    while let Some((j, c)) = chars.next() {
        if c == q {
            return Some(&body[j + 1..]);
        }
        if c == '\\' && q == '"' {
            match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, 't')) => value.push('\t'),
                Some((_, e @ ('"' | '\\' | '$'))) => value.push(e),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            }
            continue;
        }
        value.push(c);
    }
    None
}

// ----------------------------------------------------------------- env-map

fn env_map(path: &Path, options: &ReadOptions) -> Result<Vec<RawEntry>> {
    let bytes = read_file(path, MAX_IMPORT_FILE)?;
    let text = text(path, &bytes)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((name, var)) = l.split_once('=') else {
            return Err(malformed(
                path,
                format!("line {}: expected name=VARIABLE", n + 1),
            ));
        };
        let (name, var) = (name.trim(), var.trim());
        let value = match &options.environment {
            Some(env) => env.get(var).map(|v| SecretValue::copy_from(v.as_bytes())),
            None => std::env::var_os(var).map(|v| {
                use std::os::unix::ffi::OsStringExt as _;
                SecretValue::from(v.into_vec())
            }),
        };
        let value = value.ok_or_else(|| {
            malformed(
                path,
                format!("line {}: the variable {var} is not set", n + 1),
            )
        })?;
        out.push(RawEntry {
            name: name.to_string(),
            value,
            origin: format!("line {} ({var})", n + 1),
            place: Place::None,
        });
    }
    Ok(out)
}

// ------------------------------------------------------------ secrets-yaml

#[derive(serde::Deserialize)]
struct YamlDoc {
    secrets: Vec<YamlEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlEntry {
    name: Option<String>,
    value: Option<YamlValue>,
    file: Option<String>,
    store_as: Option<String>,
}

/// A YAML scalar, wiped on drop.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum YamlValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Drop for YamlValue {
    fn drop(&mut self) {
        if let YamlValue::Text(s) = self {
            s.zeroize();
        }
    }
}

fn secrets_yaml(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<RawEntry>> {
    let bytes = read_file(path, MAX_YAML_FILE)?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            warnings.push(format!(
                "{} was readable by other users (mode {:o}); its values may have been seen",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
    }
    let text = text(path, &bytes)?;
    let doc: YamlDoc = serde_saphyr::from_str(text).map_err(|e| {
        let place = e.location().map_or(String::new(), |l| {
            format!("line {} column {}: ", l.line(), l.column())
        });
        malformed(
            path,
            format!("{place}not a secrets.yaml (a top-level `secrets:` list of entries)"),
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::with_capacity(doc.secrets.len());
    for (i, e) in doc.secrets.iter().enumerate() {
        let origin = format!("secrets[{i}]");
        let name = e
            .name
            .clone()
            .ok_or_else(|| malformed(path, format!("{origin}: no name")))?;
        let origin = format!("{origin} ('{}')", shorten(&name));
        let value = match (&e.value, &e.file) {
            (Some(_), Some(_)) => {
                return Err(malformed(path, format!("{origin}: both value and file")));
            }
            (None, None) => return Err(malformed(path, format!("{origin}: no value or file"))),
            (Some(v), None) => match v {
                YamlValue::Text(s) => SecretValue::copy_from(s.as_bytes()),
                YamlValue::Bool(b) => SecretValue::from(b.to_string().into_bytes()),
                YamlValue::Int(n) => SecretValue::from(n.to_string().into_bytes()),
                YamlValue::Float(f) => SecretValue::from(
                    serde_json::Number::from_f64(*f)
                        .map_or(f.to_string(), |n| n.to_string())
                        .into_bytes(),
                ),
            },
            (None, Some(file)) => {
                yaml_file_value(path, base, file, e.store_as.as_deref(), &origin)?
            }
        };
        out.push(RawEntry {
            name,
            value,
            origin,
            place: Place::None,
        });
    }
    Ok(out)
}

/// The value of a `file:` entry: a file under the YAML's folder (no `..`),
/// at most 64 KiB, as UTF-8 text (`raw`) or as base64 of its bytes.
fn yaml_file_value(
    yaml: &Path,
    base: &Path,
    file: &str,
    store_as: Option<&str>,
    origin: &str,
) -> Result<SecretValue> {
    let rel = Path::new(file);
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(malformed(
            yaml,
            format!("{origin}: file: '..' is not allowed"),
        ));
    }
    let full = if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        base.join(rel)
    };
    let canon = full.canonicalize().map_err(|e| io(&full, e))?;
    let root = base.canonicalize().map_err(|e| io(base, e))?;
    if !canon.starts_with(&root) {
        return Err(malformed(
            yaml,
            format!(
                "{origin}: file: {} is outside the folder of the YAML file",
                full.display()
            ),
        ));
    }
    let bytes = read_file(&canon, MAX_YAML_VALUE_FILE)?;
    match store_as.unwrap_or("raw") {
        "raw" => match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(SecretValue::copy_from(&bytes)),
            Err(_) => Err(malformed(
                yaml,
                format!(
                    "{origin}: file: {} is not UTF-8 text (use store_as: base64)",
                    full.display()
                ),
            )),
        },
        "base64" => {
            use base64::Engine as _;
            Ok(SecretValue::from(
                base64::engine::general_purpose::STANDARD
                    .encode(&bytes[..])
                    .into_bytes(),
            ))
        }
        other => Err(malformed(
            yaml,
            format!(
                "{origin}: store_as: {:?} (expected raw or base64)",
                shorten(other)
            ),
        )),
    }
}

// ------------------------------------------------------------------ fernet

#[cfg(feature = "dtpy")]
fn fernet(path: &Path, options: &ReadOptions) -> Result<Vec<RawEntry>> {
    let key_path = options.key_file.as_deref().ok_or_else(|| {
        Error::Validation(format!(
            "{}: a Fernet file needs its key file (seed 001: .encryption_key beside it)",
            path.display()
        ))
    })?;
    let key = read_file(key_path, 4096)?;
    let key = text(key_path, &key)?;
    let token = read_file(path, MAX_IMPORT_FILE)?;
    let token = text(path, &token)?;
    let plain =
        tresor_stores::dtpy::format::fernet_decrypt(key, token).ok_or_else(|| Error::Auth {
            store: "import".into(),
            reason: format!(
                "{} does not open with the key in {} (a wrong key, or the file was changed)",
                path.display(),
                key_path.display()
            ),
        })?;
    let doc = parse_json(path, &plain)?;
    let Value::Object(map) = &doc.0 else {
        return Err(malformed(path, "the decrypted file holds no JSON object"));
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let origin = format!("entry '{}'", shorten(k));
        let value = scalar(v).ok_or_else(|| {
            malformed(
                path,
                format!("{origin}: the value is {}, not a string", kind_of(v)),
            )
        })?;
        // Seed 001 keys entries "<provider>.<key>".
        let name = match k.split_once('.') {
            Some((p, rest)) => format!("{p}/{rest}"),
            None => k.clone(),
        };
        out.push(RawEntry {
            name,
            value,
            origin,
            place: Place::None,
        });
    }
    Ok(out)
}

#[cfg(not(feature = "dtpy"))]
fn fernet(path: &Path, _: &ReadOptions) -> Result<Vec<RawEntry>> {
    Err(Error::Validation(format!(
        "{}: this build of tresor reads no Fernet files (cargo feature dtpy)",
        path.display()
    )))
}

// -------------------------------------------------------------------- dtpy

/// The keystore a path names: the file, or the one `.v3keystore` in a folder.
#[cfg(feature = "dtpy")]
pub(crate) fn keystore_in(path: &Path) -> Result<std::path::PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(path)
        .map_err(|e| io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "v3keystore"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(malformed(path, "the folder holds no .v3keystore file")),
        _ => Err(malformed(
            path,
            format!(
                "the folder holds {} .v3keystore files; name one",
                found.len()
            ),
        )),
    }
}

#[cfg(feature = "dtpy")]
fn dtpy(path: &Path, options: &ReadOptions) -> Result<Vec<RawEntry>> {
    use tresor_stores::dtpy::{Dtpy, DtpyOptions, value_bytes};
    let file = keystore_in(path)?;
    if !file.exists() {
        return Err(io(&file, std::io::ErrorKind::NotFound.into()));
    }
    let store = Dtpy::open(DtpyOptions {
        name: "dtpy import".into(),
        ..DtpyOptions::new(&file, options.password.clone())
    })?;
    let entries = store.read_all()?;
    let index = entries.index(store.index_key());
    let mut out = Vec::new();
    for (k, v) in &entries.0 {
        if k == store.index_key() || (!options.all && !index.iter().any(|n| n == k)) {
            continue;
        }
        let Some(value) = value_bytes(v) else {
            continue;
        };
        out.push(RawEntry {
            name: k.clone(),
            value,
            origin: format!("entry '{}'", shorten(k)),
            place: Place::None,
        });
    }
    Ok(out)
}

#[cfg(not(feature = "dtpy"))]
fn dtpy(path: &Path, _: &ReadOptions) -> Result<Vec<RawEntry>> {
    Err(Error::Validation(format!(
        "{}: this build of tresor reads no dtPyAppFramework keystores (cargo feature dtpy)",
        path.display()
    )))
}

// ------------------------------------------------------------------- names

/// A name tresor accepts for one it does not: each character outside
/// `A-Z a-z 0-9 . _ - /` becomes `_`, empty segments are dropped, `.` and
/// `..` segments become `_`; `None` if nothing is left.
pub fn map_name(raw: &str) -> Option<SecretName> {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let segments: Vec<&str> = mapped
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if s == "." || s == ".." { "_" } else { s })
        .collect();
    let mut joined = segments.join("/");
    while joined.len() > tresor_core::MAX_NAME_LEN {
        joined.pop();
        while joined.ends_with('/') {
            joined.pop();
        }
    }
    SecretName::new(joined).ok()
}

/// Overwrites a file with random bytes (three passes, each synced), then
/// removes it. Copy-on-write and journaling filesystems and SSDs may keep
/// old blocks; this is the framework's own best effort, not a guarantee.
pub fn shred(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(Error::UnsafePath {
            path: path.to_path_buf(),
            problem: "is not a regular file; only files are shredded".into(),
        });
    }
    let len = meta.len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..3 {
        use std::io::Seek as _;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| io(path, e))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            getrandom::fill(&mut buf[..n])
                .map_err(|e| io(path, std::io::Error::other(e.to_string())))?;
            f.write_all(&buf[..n]).map_err(|e| io(path, e))?;
            left -= n as u64;
        }
        f.sync_all().map_err(|e| io(path, e))?;
    }
    drop(f);
    std::fs::remove_file(path).map_err(|e| io(path, e))
}

/// A name or key from a file, cut for messages.
fn shorten(s: &str) -> String {
    if s.len() <= 80 && !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let cut: String = s.chars().take(80).collect();
    let cut: String = cut
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 80 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Replaces `path`'s contents with `bytes`: a temporary file beside it with
/// the same mode, synced; the old file overwritten with random bytes; then
/// the rename.
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = std::fs::metadata(path)
        .map_err(|e| io(path, e))?
        .permissions()
        .mode()
        & 0o777;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io(path, std::io::Error::other(e.to_string())))?;
    let name = path
        .file_name()
        .map_or("import".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tresor-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(&tmp, e)
    })?;
    // The old text held the values: overwritten before it is replaced.
    let overwrite = || -> std::io::Result<()> {
        let len = std::fs::metadata(path)?.len();
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            getrandom::fill(&mut buf[..n]).map_err(|e| std::io::Error::other(e.to_string()))?;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    };
    if let Err(e) = overwrite().and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    Ok(())
}
