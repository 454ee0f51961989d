//! Export: what the stores hold under a prefix, as metadata only (names,
//! versions, dates, metadata: no values) or as a bundle with every version's
//! value, which leaves tresor only inside an age file ([`seal`]) and comes
//! back, versions and metadata included, through [`open`] and
//! [`Tresor::import_histories`].
//!
//! ```
//! use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};
//! use tresor::files::{DecryptWith, EncryptTo, age, parse_recipient};
//! use tresor::import::bundle;
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let vault = Vault::create(&dir.path().join("a.db"), &key, &CreateOptions::default())?.vault;
//! let mut a = Tresor::builder().vault("a", vault, 10).build()?;
//! let name = SecretName::new("db/password")?;
//! a.set(&name, &SecretValue::copy_from(b"v1"), &Default::default())?;
//! a.set(&name, &SecretValue::copy_from(b"v2"), &Default::default())?;
//!
//! let id = age::x25519::Identity::generate();
//! let to = EncryptTo::Recipients(vec![parse_recipient(&id.to_public().to_string())?]);
//! let sealed = bundle::seal(&bundle::export(&mut a, "", true)?, &to)?;
//! let back = bundle::open(&sealed, &DecryptWith::Identities(vec![Box::new(id)]), "bundle")?;
//! assert_eq!(back.secrets[0].versions.len(), 2);
//!
//! let vault = Vault::create(&dir.path().join("b.db"), &key, &CreateOptions::default())?.vault;
//! let mut b = Tresor::builder().vault("b", vault, 10).build()?;
//! b.import_histories(None, &back.items()?, None, &mut |_| {})?;
//! let found = b.get(&name, tresor::Selector::Version(1))?;
//! assert_eq!(found.secret.value.expose_secret(), b"v1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize as _, Zeroizing};

use tresor_core::{
    Error, Metadata, PutOptions, Result, SecretName, SecretValue, Selector, VersionInfo,
};

use crate::Tresor;
use crate::files::{self, DecryptWith, EncryptTo};
use crate::manager::History;

/// The `format` field of a bundle.
pub const FORMAT: &str = "tresor-bundle";
/// The bundle version this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest bundle read (its plaintext is held in memory).
const MAX_BUNDLE: u64 = 1 << 30;

/// An export: secrets with their versions; values only in a bundle.
#[derive(Serialize, Deserialize)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// When it was made, ms since the epoch.
    pub exported_at: i64,
    /// The secrets, by name.
    pub secrets: Vec<BundleSecret>,
}

/// One secret of an export.
#[derive(Serialize, Deserialize)]
pub struct BundleSecret {
    /// Its name.
    pub name: String,
    /// The store it came from.
    pub store: String,
    /// The current version.
    pub current: u64,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its versions, oldest first (destroyed ones left out).
    pub versions: Vec<BundleVersion>,
}

/// One version of an export.
#[derive(Serialize, Deserialize)]
pub struct BundleVersion {
    /// Its number.
    pub version: u64,
    /// When it was written, ms since the epoch.
    pub created_at: i64,
    /// Who wrote it.
    pub actor: String,
    /// Why, if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its length in bytes.
    pub len: usize,
    /// The value, base64 (bundles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Drop for BundleVersion {
    fn drop(&mut self) {
        if let Some(v) = &mut self.value {
            v.zeroize();
        }
    }
}

impl Bundle {
    /// The histories to write back: each secret's versions oldest first,
    /// with their reasons; the secret's metadata goes with its first version.
    pub fn items(&self) -> Result<Vec<History>> {
        let mut out = Vec::with_capacity(self.secrets.len());
        for (i, s) in self.secrets.iter().enumerate() {
            let name = SecretName::new(s.name.clone())?;
            let mut versions = Vec::with_capacity(s.versions.len());
            for (j, v) in s.versions.iter().enumerate() {
                let text = v.value.as_deref().ok_or_else(|| Error::Malformed {
                    what: format!("bundle: secrets[{i}] ('{name}') version {}", v.version),
                    problem: "has no value (a metadata-only export cannot be imported)".into(),
                })?;
                let bytes = STANDARD.decode(text).map_err(|_| Error::Malformed {
                    what: format!("bundle: secrets[{i}] ('{name}') version {}", v.version),
                    problem: "the value is not base64".into(),
                })?;
                versions.push((
                    SecretValue::from(bytes),
                    PutOptions {
                        reason: v.reason.clone(),
                        metadata: if j == 0 {
                            s.metadata.clone()
                        } else {
                            Metadata::new()
                        },
                        ..PutOptions::default()
                    },
                ));
            }
            out.push((name, versions));
        }
        Ok(out)
    }
}

/// What the stores hold under `prefix`: every listed secret with its
/// versions (stores without versions: the current value as version 1), and
/// with `values` each version's value.
pub fn export(t: &mut Tresor, prefix: &str, values: bool) -> Result<Bundle> {
    let listing = t.list(prefix)?;
    let mut secrets = Vec::with_capacity(listing.entries.len());
    for l in &listing.entries {
        let name = &l.info.name;
        let history: Vec<VersionInfo> = match t.history(name, Some(&l.store)) {
            Ok((_, h)) => h,
            Err(Error::Unsupported { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut versions = Vec::new();
        if history.is_empty() {
            let found = t.get_from(&l.store, name, Selector::default())?;
            versions.push(BundleVersion {
                version: found.secret.version,
                created_at: l.info.updated_at,
                actor: String::new(),
                reason: None,
                len: found.secret.value.len(),
                value: values.then(|| STANDARD.encode(found.secret.value.expose_secret())),
            });
        } else {
            for h in history.iter().filter(|h| h.destroyed_at.is_none()) {
                let value = if values {
                    let found = t.get_from(&l.store, name, Selector::Version(h.version))?;
                    Some(STANDARD.encode(found.secret.value.expose_secret()))
                } else {
                    None
                };
                versions.push(BundleVersion {
                    version: h.version,
                    created_at: h.created_at,
                    actor: h.actor.clone(),
                    reason: h.reason.clone(),
                    len: h.len,
                    value,
                });
            }
        }
        secrets.push(BundleSecret {
            name: name.to_string(),
            store: l.store.clone(),
            current: l.info.current,
            metadata: l.info.metadata.clone(),
            versions,
        });
    }
    Ok(Bundle {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        secrets,
    })
}

/// The bundle as JSON text, in a buffer wiped on drop.
pub fn to_json(bundle: &Bundle) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    serde_json::to_writer(&mut *out, bundle).expect("a bundle serializes");
    out
}

/// The bundle encrypted as an age file.
pub fn seal(bundle: &Bundle, to: &EncryptTo) -> Result<Vec<u8>> {
    let json = to_json(bundle);
    let mut sealed = Vec::with_capacity(json.len() + 4096);
    files::encrypt(to, &json[..], &mut sealed, "bundle")?;
    Ok(sealed)
}

/// Reads a bundle back from its age file. A wrong key is [`Error::Auth`];
/// a truncated or altered file [`Error::Integrity`]; nothing of a damaged
/// file is used.
pub fn open(sealed: &[u8], with: &DecryptWith, what: &str) -> Result<Bundle> {
    let mut json = Zeroizing::new(Vec::with_capacity(sealed.len()));
    files::decrypt(with, sealed, &mut *json, what)?;
    let bundle: Bundle = serde_json::from_slice(&json).map_err(|e| Error::Malformed {
        what: what.to_string(),
        problem: format!(
            "line {} column {}: not a tresor bundle",
            e.line(),
            e.column()
        ),
    })?;
    if bundle.format != FORMAT || bundle.version != VERSION {
        return Err(Error::UnsupportedFormat {
            what: what.to_string(),
            found: format!("{} {}", bundle.format, bundle.version),
            supported: format!("{FORMAT} {VERSION}"),
        });
    }
    Ok(bundle)
}

/// Reads a bundle file (see [`open`]).
pub fn open_file(path: &std::path::Path, with: &DecryptWith) -> Result<Bundle> {
    let sealed = super::formats::read_file(path, MAX_BUNDLE)?;
    open(&sealed, with, &path.display().to_string())
}

/// Writes the current values under `prefix` as a new dtPyAppFramework
/// keystore at `path` (INDEX filled), sealed with `password` (verbatim) or
/// the framework's machine password for that path. Returns how many were
/// written. An existing file is never replaced.
#[cfg(feature = "dtpy")]
pub fn export_dtpy(
    t: &mut Tresor,
    prefix: &str,
    path: &std::path::Path,
    password: Option<Zeroizing<String>>,
) -> Result<usize> {
    use tresor_stores::dtpy::{Dtpy, DtpyOptions};
    if path.exists() {
        return Err(Error::Exists {
            path: path.to_path_buf(),
        });
    }
    let bundle = export(t, prefix, true)?;
    let mut items = Vec::with_capacity(bundle.secrets.len());
    for s in &bundle.secrets {
        if let Some(v) = s.versions.iter().find(|v| v.version == s.current) {
            let bytes = STANDARD
                .decode(v.value.as_deref().unwrap_or_default())
                .unwrap_or_default();
            items.push((SecretName::new(s.name.clone())?, SecretValue::from(bytes)));
        }
    }
    let mut store = Dtpy::open(DtpyOptions {
        name: "export".into(),
        ..DtpyOptions::new(path, password)
    })?;
    store.put_many(&items)?;
    Ok(items.len())
}

/// Without the `dtpy` feature: an error saying so.
#[cfg(not(feature = "dtpy"))]
pub fn export_dtpy(
    _: &mut Tresor,
    _: &str,
    path: &std::path::Path,
    _: Option<Zeroizing<String>>,
) -> Result<usize> {
    Err(Error::Validation(format!(
        "{}: this build of tresor writes no dtPyAppFramework keystores (cargo feature dtpy)",
        path.display()
    )))
}
