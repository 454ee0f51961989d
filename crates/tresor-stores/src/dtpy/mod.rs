//! dtPyAppFramework keystores (`<app>.v3keystore`) as a store.
//!
//! The file is `salt ‖ Fernet token ‖ HMAC-SHA256` over a JSON object of
//! names to values (see `format`). tresor reads and writes it natively, so a
//! framework application and tresor can share one keystore.
//!
//! # Password
//!
//! - option `password`: used verbatim, as the framework uses
//!   `KEYSTORE_PASSWORD` in container mode (give it as a reference,
//!   `password = "ENV/KEYSTORE_PASSWORD"`);
//! - no password: the framework's machine password for that file, derived
//!   from the app's short name (option `app`, default: the file name
//!   without `.v3keystore`), the file's absolute path, the machine id and the
//!   host name (Linux only), so a desktop user's keystore opens with nothing
//!   typed.
//!
//! A wrong password (or a changed file: the format cannot tell them apart)
//! is [`Error::Auth`]; nothing is written.
//!
//! # Names and values
//!
//! Every JSON entry is a secret, except the bookkeeping entry
//! `<store>.INDEX` (option `index_store`, default `User_Local_Store`), a
//! JSON string holding the array of secret names the framework lists. Entries
//! not in the INDEX are the framework's settings (`Settings.set`): readable
//! by name, listed only with option `all = true`. Writes add the name to
//! the INDEX, deletes remove it, so the framework's own listing stays right.
//!
//! Values that are JSON strings read as their text; numbers, booleans,
//! arrays and objects as their JSON text; `null` as missing. A write stores
//! UTF-8 values as JSON strings. Bytes that are not UTF-8 (which the
//! framework cannot hold) are stored as the object
//! `{"tresor.base64": "<base64>"}` and read back byte for byte.
//!
//! # Capabilities
//!
//! One value per name: no versions, labels, metadata, check-and-set or
//! soft delete (all [`Error::Unsupported`]); a purge deletes the entry.
//!
//! # Sharing the file
//!
//! Writes hold the framework's lock (`flock` on `<file>.lock`, as Python's
//! `filelock` does it: open, lock, check the file was not unlinked
//! meanwhile; on release unlink, then unlock), read the file anew, write a
//! fresh salt and IV to a temporary file in the same folder, fsync it and
//! rename it over the keystore. Reads need no lock: the file is only ever
//! replaced whole.

pub mod format;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use tresor_core::{
    Capabilities, DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Health, Label, PutOptions, Result,
    Secret, SecretInfo, SecretName, SecretValue, Selector, Store,
};
use zeroize::{Zeroize as _, Zeroizing};

use crate::StoreOptions;

/// The framework's default user store, whose INDEX entry is `User_Local_Store.INDEX`.
pub const DEFAULT_INDEX_STORE: &str = "User_Local_Store";
/// The key of a non-UTF-8 value's object.
const BASE64_KEY: &str = "tresor.base64";
/// How long a write waits for the framework's lock (its own default).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The framework refuses keystores above this; tresor too (hostile input).
const MAX_FILE_LEN: u64 = 256 * 1024 * 1024;

/// A keystore's entries, wiped when dropped.
pub struct Entries(pub Map<String, Value>);

impl Drop for Entries {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(o) => o.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
    }
}

impl Entries {
    /// Parses a keystore's JSON text.
    pub fn parse(json: &[u8], what: &str) -> Result<Self> {
        match serde_json::from_slice::<Value>(json) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Error::Malformed {
                what: what.to_string(),
                problem: "the keystore does not hold a JSON object".to_string(),
            }),
            Err(e) => Err(Error::Malformed {
                what: what.to_string(),
                problem: format!(
                    "the keystore's JSON does not parse at line {} column {}",
                    e.line(),
                    e.column()
                ),
            }),
        }
    }

    /// The JSON text, in a wiped buffer.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        serde_json::to_writer(&mut *out, &self.0).expect("a JSON map serializes");
        out
    }

    /// The names the INDEX entry `index_key` lists (empty if there is none
    /// or it is not a JSON array of strings).
    pub fn index(&self, index_key: &str) -> Vec<String> {
        match self.0.get(index_key) {
            Some(Value::String(s)) => serde_json::from_str::<Vec<String>>(s).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Replaces the INDEX entry with `names`.
    pub fn set_index(&mut self, index_key: &str, names: &[String]) {
        let text = serde_json::to_string(names).expect("strings serialize");
        self.0.insert(index_key.to_string(), Value::String(text));
    }

    /// The value of `key` as bytes (see the module docs), `None` for
    /// `null` or a missing key.
    pub fn value(&self, key: &str) -> Option<SecretValue> {
        value_bytes(self.0.get(key)?)
    }
}

/// A JSON value as the bytes tresor shows (see the module docs).
pub fn value_bytes(v: &Value) -> Option<SecretValue> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(SecretValue::copy_from(s.as_bytes())),
        Value::Object(o) if o.len() == 1 => match o.get(BASE64_KEY) {
            Some(Value::String(b)) => STANDARD
                .decode(b)
                .ok()
                .map(SecretValue::from)
                .or_else(|| Some(json_text(v))),
            _ => Some(json_text(v)),
        },
        other => Some(json_text(other)),
    }
}

fn json_text(v: &Value) -> SecretValue {
    SecretValue::from(serde_json::to_vec(v).expect("a JSON value serializes"))
}

/// The JSON value tresor writes for `bytes`: a string, or the base64 object
/// for bytes that are not UTF-8.
pub fn json_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => {
            let mut o = Map::new();
            o.insert(
                BASE64_KEY.to_string(),
                Value::String(STANDARD.encode(bytes)),
            );
            Value::Object(o)
        }
    }
}

/// How to open a keystore.
pub struct DtpyOptions {
    /// The store's name in messages.
    pub name: String,
    /// The `.v3keystore` file.
    pub path: PathBuf,
    /// The password, used verbatim; `None`: the machine password.
    pub password: Option<Zeroizing<String>>,
    /// The app's short name for the machine password (default: the file
    /// name without `.v3keystore`).
    pub app: Option<String>,
    /// The framework store whose INDEX is kept (`User_Local_Store`).
    pub index_store: String,
    /// List settings (entries not in the INDEX) too.
    pub all: bool,
}

impl DtpyOptions {
    /// Options for `path` with a password, everything else default.
    pub fn new(path: impl Into<PathBuf>, password: Option<Zeroizing<String>>) -> Self {
        Self {
            name: "dtpy".to_string(),
            path: path.into(),
            password,
            app: None,
            index_store: DEFAULT_INDEX_STORE.to_string(),
            all: false,
        }
    }
}

/// A dtPyAppFramework keystore as a [`Store`].
///
/// ```
/// use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
/// use tresor_stores::dtpy::{Dtpy, DtpyOptions};
/// use zeroize::Zeroizing;
///
/// let dir = std::env::temp_dir().join(format!("dtpy-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("myapp.v3keystore");
/// let mut store = Dtpy::open(DtpyOptions::new(&path, Some(Zeroizing::new("pw".into()))))?;
/// let name = SecretName::new("db_password")?;
/// store.put(&name, &SecretValue::copy_from(b"s3cret"), &PutOptions::default())?;
/// assert_eq!(store.get(&name, Selector::default())?.value.expose_secret(), b"s3cret");
/// assert_eq!(store.list("")?.len(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Dtpy {
    name: String,
    path: PathBuf,
    password: Zeroizing<String>,
    index_key: String,
    all: bool,
}

impl std::fmt::Debug for Dtpy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dtpy")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Dtpy {
    /// The store for `options`. Nothing is read yet (a missing file is an
    /// empty keystore until the first write creates it).
    pub fn open(options: DtpyOptions) -> Result<Self> {
        let path = std::path::absolute(&options.path).map_err(|e| Error::Io {
            store: options.name.clone(),
            path: options.path.clone(),
            source: e,
        })?;
        let password = match options.password {
            Some(p) => p,
            None => {
                let app = match options.app {
                    Some(a) => a,
                    None => app_of(&path).ok_or_else(|| Error::InvalidOption {
                        store: options.name.clone(),
                        option: "app".to_string(),
                        problem: "the file is not named <app>.v3keystore; give the app's short \
                                  name (or a password)"
                            .to_string(),
                    })?,
                };
                machine_password(&options.name, &app, &path)?
            }
        };
        Ok(Self {
            name: options.name,
            path,
            password,
            index_key: format!("{}.INDEX", options.index_store),
            all: options.all,
        })
    }

    /// The store a `tresor.toml` entry describes: `path` (required),
    /// `password` (a reference, resolved by the manager), `app`,
    /// `index_store`, `all`.
    pub fn from_options(options: &StoreOptions) -> Result<Self> {
        let path = PathBuf::from(options.require("path")?);
        let password = options
            .get("password")
            .map(|p| Zeroizing::new(p.to_string()));
        let app = options.get("app").map(str::to_string);
        let index_store = options
            .get("index_store")
            .unwrap_or(DEFAULT_INDEX_STORE)
            .to_string();
        let all = options.bool("all")?.unwrap_or(false);
        options.finish()?;
        Self::open(DtpyOptions {
            name: options.store().to_string(),
            path,
            password,
            app,
            index_store,
            all,
        })
    }

    /// The keystore file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The INDEX entry's key (`User_Local_Store.INDEX`).
    pub fn index_key(&self) -> &str {
        &self.index_key
    }

    /// Every entry of the file (an empty map if the file does not exist).
    pub fn read_all(&self) -> Result<Entries> {
        let bytes = match read_capped(&self.path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entries(Map::new())),
            Err(e) => return Err(self.io(&self.path, e)),
        };
        let json = format::open(&bytes, self.password.as_bytes()).map_err(|e| match e {
            format::OpenError::Malformed(problem) => Error::Malformed {
                what: format!("{}: {}", self.name, self.path.display()),
                problem: problem.to_string(),
            },
            format::OpenError::WrongPasswordOrAltered => Error::Auth {
                store: self.name.clone(),
                reason: format!(
                    "{}: wrong password, or the file was changed (its HMAC does not match)",
                    self.path.display()
                ),
            },
            format::OpenError::Inner => Error::Integrity {
                store: self.name.clone(),
                detail: format!("{}: the Fernet token", self.path.display()),
            },
        })?;
        Entries::parse(&json, &format!("{}: {}", self.name, self.path.display()))
    }

    /// Changes the file under the framework's lock: reads it anew, lets
    /// `change` edit the entries, writes the result atomically. Nothing is
    /// written when `change` fails.
    pub fn update<T>(&mut self, change: impl FnOnce(&mut Entries, &str) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut entries = self.read_all()?;
        let out = change(&mut entries, &self.index_key)?;
        self.write_all(&entries)?;
        Ok(out)
    }

    /// Writes `entries` as the whole keystore (fresh salt and IV, temporary
    /// file, fsync, rename). The caller holds the lock.
    fn write_all(&self, entries: &Entries) -> Result<()> {
        let json = entries.to_json();
        let sealed = format::seal(&json, self.password.as_bytes());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut suffix = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
            .expect("the OS random source works");
        let tmp = dir.join(format!(
            "keystore_tresor_{}.tmp",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.io(&self.path, e)
        })
    }

    /// Takes the framework's lock on `<file>.lock`.
    fn lock(&self) -> Result<FileLock> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(O_NOFOLLOW)
                .open(&lock_path)
                .map_err(|e| self.io(&lock_path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    // Another holder may have unlinked it before we locked.
                    if file.metadata().map(|m| m.nlink()).unwrap_or(0) != 0 {
                        return Ok(FileLock {
                            path: lock_path,
                            _file: file,
                        });
                    }
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(self.io(&lock_path, e)),
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    store: self.name.clone(),
                    reason: format!(
                        "{} is held by another process for more than {} s",
                        lock_path.display(),
                        LOCK_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn io(&self, path: &Path, e: std::io::Error) -> Error {
        Error::Io {
            store: self.name.clone(),
            path: path.to_path_buf(),
            source: e,
        }
    }

    fn check_selector(&self, selector: Selector) -> Result<()> {
        match selector {
            Selector::Label(Label::Current) | Selector::Version(1) => Ok(()),
            Selector::Version(_) => Err(self.unsupported("versions (one value per name)")),
            Selector::Label(_) => Err(self.unsupported("labels other than current")),
        }
    }

    fn not_found(&self, name: &SecretName) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what: format!("'{name}'"),
        }
    }
}

#[cfg(target_os = "linux")]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(not(target_os = "linux"))]
const O_NOFOLLOW: i32 = 0x100;

/// The held lock: unlinked, then unlocked (closed), as filelock releases.
struct FileLock {
    path: PathBuf,
    _file: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = File::open(path)?;
    let mut out = Vec::new();
    f.take(MAX_FILE_LEN + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_LEN {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    Ok(out)
}

/// `<app>` of a file named `<app>.v3keystore`.
pub fn app_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let app = file.strip_suffix(".v3keystore")?;
    (!app.is_empty()).then(|| app.to_string())
}

/// The framework's machine password for the keystore at `path` (absolute)
/// of app `app`.
fn machine_password(store: &str, app: &str, path: &Path) -> Result<Zeroizing<String>> {
    if !cfg!(target_os = "linux") {
        return Err(Error::InvalidOption {
            store: store.to_string(),
            option: "password".to_string(),
            problem: "the framework's machine password is derived on Linux only; give a password"
                .to_string(),
        });
    }
    let ids = format::linux_machine_ids().map_err(|e| Error::Io {
        store: store.to_string(),
        path: PathBuf::from("/proc/sys/kernel/hostname"),
        source: e,
    })?;
    let text = path.to_str().ok_or_else(|| Error::InvalidOption {
        store: store.to_string(),
        option: "path".to_string(),
        problem: "is not valid Unicode".to_string(),
    })?;
    Ok(format::machine_password(app, text, &ids))
}

impl Store for Dtpy {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            ..Capabilities::default()
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        self.check_selector(selector)?;
        if name.as_str() == self.index_key {
            return Err(self.not_found(name));
        }
        let entries = self.read_all()?;
        let value = entries
            .value(name.as_str())
            .ok_or_else(|| self.not_found(name))?;
        Ok(Secret {
            name: name.clone(),
            version: 1,
            value,
        })
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.expect_version.is_some() {
            return Err(self.unsupported("check-and-set"));
        }
        if !options.metadata.is_empty() {
            return Err(self.unsupported("metadata"));
        }
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        if value.len() > DEFAULT_MAX_VALUE_LEN {
            return Err(Error::TooLarge {
                what: format!("{}: the value for '{name}'", self.name),
                limit: DEFAULT_MAX_VALUE_LEN as u64,
            });
        }
        if name.as_str() == self.index_key {
            return Err(Error::Validation(format!(
                "{}: '{name}' is the framework's index entry, not a secret",
                self.name
            )));
        }
        self.put_many(&[(name.clone(), SecretValue::copy_from(value.expose_secret()))])?;
        Ok(1)
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        if mode == DeleteMode::Soft {
            return Err(self.unsupported("soft delete (nothing can be restored; purge deletes)"));
        }
        if name.as_str() == self.index_key {
            return Err(self.not_found(name));
        }
        let missing = self.not_found(name);
        self.update(|entries, index_key| {
            if entries.0.remove(name.as_str()).is_none() {
                return Err(missing);
            }
            let mut index = entries.index(index_key);
            if index.iter().any(|n| n == name.as_str()) {
                index.retain(|n| n != name.as_str());
                entries.set_index(index_key, &index);
            }
            Ok(())
        })
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let entries = self.read_all()?;
        let index = entries.index(&self.index_key);
        let mut out: Vec<SecretInfo> = entries
            .0
            .iter()
            .filter(|(k, v)| {
                k.as_str() != self.index_key
                    && k.starts_with(prefix)
                    && !v.is_null()
                    && (self.all || index.iter().any(|n| n == *k))
            })
            .filter_map(|(k, _)| SecretName::new(k.as_str()).ok())
            .map(SecretInfo::single)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn health(&mut self) -> Health {
        match self.read_all() {
            Ok(entries) => Health {
                reachable: true,
                authenticated: true,
                detail: format!(
                    "{}: {} entries",
                    self.path.display(),
                    entries.0.len().saturating_sub(1)
                ),
            },
            Err(e) => Health {
                reachable: !matches!(e, Error::Io { .. }),
                authenticated: false,
                detail: e.to_string(),
            },
        }
    }
}

impl Dtpy {
    /// Writes many secrets in one locked rewrite of the file, each added to
    /// the INDEX: all or nothing.
    pub fn put_many(&mut self, items: &[(SecretName, SecretValue)]) -> Result<()> {
        self.update(|entries, index_key| {
            let mut index = entries.index(index_key);
            for (name, value) in items {
                entries
                    .0
                    .insert(name.to_string(), json_value(value.expose_secret()));
                if !index.iter().any(|n| n == name.as_str()) {
                    index.push(name.to_string());
                }
            }
            entries.set_index(index_key, &index);
            Ok(())
        })
    }
}
