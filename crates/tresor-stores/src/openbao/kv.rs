//! KV v2: reading and writing entries, their metadata and versions, and
//! the value codec.

use super::*;

impl OpenBao {
    // --- KV v2 --------------------------------------------------------------

    /// The entry's metadata, `None` if it has none (never written or purged).
    pub(super) fn read_metadata(&self, name: &SecretName) -> Result<Option<KvMetadata>> {
        let reply = self.call(Method::Get, &self.metadata_path(name.as_str()), None)?;
        match reply.status {
            200 => {
                let json = reply.json();
                KvMetadata::parse(&json["data"])
                    .map(Some)
                    .ok_or_else(|| Error::Integrity {
                        store: self.name.clone(),
                        detail: format!("'{name}': metadata in an unexpected shape"),
                    })
            }
            404 => Ok(None),
            _ => Err(self.http_error(&reply, &format!("'{name}' metadata"))),
        }
    }

    pub(super) fn read_version(&self, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let path = self.data_path(name.as_str());
        let what = match version {
            Some(v) => format!("'{name}' version {v}"),
            None => format!("'{name}'"),
        };
        let v = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = v.iter().map(|v| ("version", v.as_str())).collect();
        let reply = self.get_path(&path, &query)?;
        match reply.status {
            200 => {}
            404 => {
                let json = reply.json();
                let meta = &json["data"]["metadata"];
                let state = if meta["destroyed"] == Value::Bool(true) {
                    " (destroyed)"
                } else if meta["deletion_time"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
                {
                    " (deleted)"
                } else {
                    ""
                };
                return Err(self.not_found(format!("{what}{state}")));
            }
            _ => return Err(self.http_error(&reply, &what)),
        }
        let mut json = reply.json();
        let number = json["data"]["metadata"]["version"].as_u64();
        let data = json.pointer_mut("/data/data").map(Value::take);
        match (number, data) {
            (Some(number), Some(Value::Object(data))) => Ok(Secret {
                name: name.clone(),
                version: number,
                value: decode_value(data).map_err(|detail| Error::Integrity {
                    store: self.name.clone(),
                    detail: format!("{what}: {detail}"),
                })?,
            }),
            // A deleted version answers 200 with null data on some servers.
            (_, Some(Value::Null)) => Err(self.not_found(format!("{what} (deleted)"))),
            _ => Err(Error::Integrity {
                store: self.name.clone(),
                detail: format!("{what}: the answer has no data or version"),
            }),
        }
    }

    pub(super) fn write_custom_metadata(&self, name: &SecretName, add: &Metadata) -> Result<()> {
        let mut merged = self
            .read_metadata(name)?
            .map(|m| m.custom)
            .unwrap_or_default();
        merged.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate_metadata(&merged)?;
        let body = serde_json::to_vec(&serde_json::json!({ "custom_metadata": merged }))
            .expect("a string map serializes");
        let reply = self.call(
            Method::Post,
            &self.metadata_path(name.as_str()),
            Some(&body),
        )?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("'{name}' metadata"))),
        }
    }

    pub(super) fn walk(&self, folder: &str, prefix: &str, out: &mut Vec<SecretInfo>) -> Result<()> {
        let path = self.metadata_path(folder);
        let reply = self.get_path(&path, &[("list", "true")])?;
        match reply.status {
            200 => {}
            404 => return Ok(()),
            _ => {
                return Err(self.http_error(&reply, &format!("listing of '{folder}'")));
            }
        }
        let json = reply.json();
        let keys: Vec<String> = json["data"]["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            let full = format!("{folder}{key}");
            if full.ends_with('/') {
                if full.starts_with(prefix) || prefix.starts_with(&full) {
                    self.walk(&full, prefix, out)?;
                }
                continue;
            }
            if !full.starts_with(prefix) {
                continue;
            }
            // Entries another tool wrote under names tresor rejects are skipped.
            let Ok(name) = SecretName::new(full) else {
                continue;
            };
            let Some(meta) = self.read_metadata(&name)? else {
                continue;
            };
            if let Some(current) = meta.current() {
                out.push(SecretInfo {
                    name,
                    current,
                    latest: meta.latest,
                    pending: None,
                    updated_at: meta.updated_at,
                    deleted_at: None,
                    metadata: meta.custom,
                });
            }
        }
        Ok(())
    }
}

/// What KV v2 keeps about an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KvMetadata {
    /// The newest version written (`current_version`).
    pub(super) latest: u64,
    /// Every version still listed, by number.
    pub(super) versions: BTreeMap<u64, KvVersion>,
    /// `custom_metadata`.
    pub(super) custom: Metadata,
    /// `updated_time`, ms since the epoch.
    pub(super) updated_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KvVersion {
    pub(super) created_at: i64,
    pub(super) deleted_at: Option<i64>,
    pub(super) destroyed: bool,
}

impl KvVersion {
    pub(super) fn live(&self) -> bool {
        self.deleted_at.is_none() && !self.destroyed
    }
}

impl KvMetadata {
    /// Parses the `data` object of a metadata read.
    pub(super) fn parse(data: &Value) -> Option<Self> {
        let latest = data["current_version"].as_u64()?;
        let mut versions = BTreeMap::new();
        for (number, v) in data["versions"].as_object()? {
            let number: u64 = number.parse().ok()?;
            let deleted_at = v["deletion_time"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| parse_time(t).unwrap_or(0));
            versions.insert(
                number,
                KvVersion {
                    created_at: v["created_time"].as_str().and_then(parse_time).unwrap_or(0),
                    deleted_at,
                    destroyed: v["destroyed"].as_bool().unwrap_or(false),
                },
            );
        }
        let custom = data["custom_metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            latest,
            versions,
            custom,
            updated_at: data["updated_time"]
                .as_str()
                .and_then(parse_time)
                .unwrap_or(0),
        })
    }

    /// `current`: the newest version, if it is live.
    pub(super) fn current(&self) -> Option<u64> {
        self.versions
            .get(&self.latest)
            .filter(|v| v.live())
            .map(|_| self.latest)
    }

    /// `previous`: the newest live version older than `current`.
    pub(super) fn previous(&self) -> Option<u64> {
        let current = self.current()?;
        self.versions
            .range(..current)
            .rev()
            .find(|(_, v)| v.live())
            .map(|(n, _)| *n)
    }

    pub(super) fn history(&self) -> Vec<VersionInfo> {
        let labels = (self.current(), self.previous());
        self.versions
            .iter()
            .map(|(&number, v)| {
                let destroyed_at = v.destroyed.then_some(v.deleted_at.unwrap_or(0));
                remote::derived_version(number, v.created_at, destroyed_at, labels)
            })
            .collect()
    }
}

/// The value of an entry's data: `{"value": text}`, `{"value_base64": b64}`,
/// or any other shape as its JSON text.
pub(super) fn decode_value(
    mut data: Map<String, Value>,
) -> std::result::Result<SecretValue, String> {
    if data.len() == 1 {
        if let Some(Value::String(text)) = data.get_mut("value") {
            return Ok(SecretValue::from(std::mem::take(text)));
        }
        if let Some(Value::String(encoded)) = data.get_mut("value_base64") {
            let mut encoded = Zeroizing::new(std::mem::take(encoded));
            return match BASE64.decode(encoded.as_bytes()) {
                Ok(bytes) => Ok(SecretValue::from(bytes)),
                Err(_) => {
                    encoded.zeroize();
                    Err("value_base64 is not valid base64".to_string())
                }
            };
        }
    }
    // The map's JSON text, written once into a buffer of its exact size (no
    // clone of the map, no growing buffer leaving copies behind), then the
    // map's strings wiped.
    let mut size = ByteCount(0);
    let text = match serde_json::to_writer(&mut size, &data) {
        Ok(()) => {
            let mut text = Vec::with_capacity(size.0);
            serde_json::to_writer(&mut text, &data).expect("writing to a Vec cannot fail");
            text
        }
        Err(_) => Vec::new(),
    };
    wipe(data);
    Ok(SecretValue::from(text))
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wipes the strings of a JSON tree (best effort).
pub(super) fn wipe(map: Map<String, Value>) {
    pub(super) fn wipe_value(v: Value) {
        match v {
            Value::String(mut s) => s.zeroize(),
            Value::Array(a) => a.into_iter().for_each(wipe_value),
            Value::Object(m) => wipe(m),
            _ => {}
        }
    }
    map.into_iter().for_each(|(_, v)| wipe_value(v));
}

/// The request body of a write: the value's JSON object and the cas option.
pub(super) fn encode_put(value: &SecretValue, cas: Option<u64>) -> Zeroizing<Vec<u8>> {
    let bytes = value.expose_secret();
    let mut body = Zeroizing::new(Vec::with_capacity(bytes.len() * 6 / 5 * 6 + 128));
    body.extend_from_slice(b"{\"data\":{");
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            body.extend_from_slice(b"\"value\":");
            write_json_str(&mut body, text);
        }
        Err(_) => {
            let encoded = Zeroizing::new(BASE64.encode(bytes));
            body.extend_from_slice(b"\"value_base64\":\"");
            body.extend_from_slice(encoded.as_bytes());
            body.push(b'"');
        }
    }
    body.push(b'}');
    if let Some(cas) = cas {
        body.extend_from_slice(format!(",\"options\":{{\"cas\":{cas}}}").as_bytes());
    }
    body.push(b'}');
    body
}

/// Appends `s` as a JSON string (with quotes) to `out`.
pub(super) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Whether the cas error of a 400 answer.
pub(super) fn is_cas_error(errors: &str) -> bool {
    errors.contains("check-and-set")
}

/// Checks a mount path (the option `option`): `/`-separated segments of
/// `A-Z a-z 0-9 . _ -`.
pub(super) fn valid_path(store: &str, option: &str, path: &str) -> Result<String> {
    let path = path.trim_matches('/');
    let ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(path.to_string())
    } else {
        Err(crate::options::invalid_option(
            store,
            option,
            &format!("{path:?} must be /-separated segments of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// Parses an RFC 3339 UTC time (`2026-11-25T12:00:00.123456Z`) to ms since
/// the epoch.
pub(super) fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut f: String = frac[..digits].chars().take(3).collect();
        while f.len() < 3 {
            f.push('0');
        }
        ms = f.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}
