//! Which project configs the user approved: `tresor config trust`.
//!
//! A `tresor.toml` found in the current folder came with whatever was
//! cloned or unpacked there, and a config decides which servers receive the
//! user's tokens (`token = "SEC/bao/token"`) and values. So a project config
//! is used only once the user approved *that content at that place*: the
//! trust list keeps, per approved file, its canonical absolute path and the
//! SHA-256 of its bytes. A file whose bytes changed is no longer approved.
//! The file named by `--config` or `TRESOR_CONFIG` is the user's own choice,
//! and the user config (`$XDG_CONFIG_HOME/tresor/config.toml`) is the
//! user's own file: neither is looked up here.
//!
//! The list lives in the user's data folder,
//! `$XDG_DATA_HOME/tresor/trusted-configs` (`~/.local/share/tresor/…`),
//! one line per file, `<sha256 hex><TAB><absolute path>`, lines starting
//! with `#` ignored. tresor writes it with mode 0600 by writing a new file
//! and renaming it over the old one, under a lock, and refuses to read it
//! when another user owns it or others may write it.
//!
//! ```
//! use tresor::config::ConfigFile;
//! use tresor::trust::{TrustList, Verdict};
//!
//! let dir = tempfile::tempdir()?;
//! let config = dir.path().join("tresor.toml");
//! std::fs::write(&config, "[[stores]]\nname = \"local\"\nkind = \"vault\"\n")?;
//! let list_file = dir.path().join("data/tresor/trusted-configs");
//!
//! let file = ConfigFile::read(&config)?;
//! assert_eq!(TrustList::open_at(&list_file)?.verdict(&file), Verdict::Unknown);
//! TrustList::trust_at(&list_file, &file)?;
//! assert_eq!(TrustList::open_at(&list_file)?.verdict(&file), Verdict::Trusted);
//!
//! // Any change to the bytes withdraws the approval.
//! std::fs::write(&config, "[[stores]]\nname = \"other\"\nkind = \"vault\"\n")?;
//! let changed = ConfigFile::read(&config)?;
//! assert!(matches!(TrustList::open_at(&list_file)?.verdict(&changed), Verdict::Changed { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tresor_core::{Error, Result};

use crate::config::ConfigFile;

/// The trust list's file name in the user's tresor data folder.
pub const TRUST_FILE: &str = "trusted-configs";
/// Largest trust list read (a line per approved file).
const MAX_LIST: u64 = 4 * 1024 * 1024;

/// One approved config file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Trusted {
    /// Its canonical absolute path.
    pub path: PathBuf,
    /// The SHA-256 of its bytes when approved, lower-case hex.
    pub sha256: String,
}

/// What the trust list says about one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Approved with exactly these bytes.
    Trusted,
    /// Approved, but its bytes have changed since.
    Changed {
        /// The SHA-256 that was approved.
        approved: String,
    },
    /// Never approved (or approval withdrawn).
    Unknown,
}

/// The list of approved project configs.
#[derive(Clone, Debug)]
pub struct TrustList {
    file: PathBuf,
    entries: Vec<Trusted>,
}

impl TrustList {
    /// The list's file: `$XDG_DATA_HOME/tresor/trusted-configs`, else
    /// `~/.local/share/tresor/trusted-configs`.
    pub fn default_file() -> Result<PathBuf> {
        Ok(crate::locate::data_dir()?.join("tresor").join(TRUST_FILE))
    }

    /// The user's trust list ([`TrustList::default_file`]); empty when the
    /// file does not exist yet.
    pub fn open() -> Result<Self> {
        Self::open_at(&Self::default_file()?)
    }

    /// The trust list kept in `file`; empty when it does not exist.
    pub fn open_at(file: &Path) -> Result<Self> {
        Ok(Self {
            file: file.to_path_buf(),
            entries: read_list(file)?,
        })
    }

    /// The file the list is kept in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every approved file, in the order approved.
    pub fn entries(&self) -> &[Trusted] {
        &self.entries
    }

    /// Whether `config` (as read, at its canonical path) is approved.
    pub fn verdict(&self, config: &ConfigFile) -> Verdict {
        match self.entries.iter().find(|t| t.path == config.canonical()) {
            Some(t) if t.sha256 == config.sha256_hex() => Verdict::Trusted,
            Some(t) => Verdict::Changed {
                approved: t.sha256.clone(),
            },
            None => Verdict::Unknown,
        }
    }

    /// `Ok` when `config` is approved; otherwise a usage error (exit 2) that
    /// names the file, says why, and gives the command that approves it.
    pub fn check(&self, config: &ConfigFile) -> Result<()> {
        let path = config.canonical();
        match self.verdict(config) {
            Verdict::Trusted => Ok(()),
            Verdict::Changed { .. } => Err(Error::Untrusted {
                path: path.to_path_buf(),
                changed: true,
            }),
            Verdict::Unknown => Err(Error::Untrusted {
                path: path.to_path_buf(),
                changed: false,
            }),
        }
    }

    /// Approves `config` as read (its canonical path, the hash of its
    /// bytes) in the user's list; `Ok(false)` when it was approved already.
    pub fn trust(config: &ConfigFile) -> Result<bool> {
        Self::trust_at(&Self::default_file()?, config)
    }

    /// [`TrustList::trust`] with the list kept in `file`.
    pub fn trust_at(file: &Path, config: &ConfigFile) -> Result<bool> {
        let path = config.canonical().to_path_buf();
        let line_safe = path.to_str().is_some_and(|p| !p.contains(['\n', '\r']));
        if !line_safe {
            return Err(Error::Validation(format!(
                "cannot trust {}: its path is not UTF-8 or holds a line break; name it with \
                 --config instead",
                path.display()
            )));
        }
        let sha256 = config.sha256_hex();
        update(file, |entries| {
            if entries.iter().any(|t| t.path == path && t.sha256 == sha256) {
                return false;
            }
            entries.retain(|t| t.path != path);
            entries.push(Trusted { path, sha256 });
            true
        })
    }

    /// Withdraws the approval of the file at `path` (canonicalized when it
    /// still exists); `Ok(false)` when it was not approved.
    pub fn untrust(path: &Path) -> Result<bool> {
        Self::untrust_at(&Self::default_file()?, path)
    }

    /// [`TrustList::untrust`] with the list kept in `file`.
    pub fn untrust_at(file: &Path, path: &Path) -> Result<bool> {
        let canonical = std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .map_err(|source| Error::Io {
                store: "config".into(),
                path: path.to_path_buf(),
                source,
            })?;
        update(file, |entries| {
            let before = entries.len();
            entries.retain(|t| t.path != canonical);
            entries.len() != before
        })
    }
}

/// Reads the list under a shared lock-free snapshot (the file is replaced
/// by rename, never rewritten in place).
fn read_list(file: &Path) -> Result<Vec<Trusted>> {
    let io = |source| Error::Io {
        store: "config trust".into(),
        path: file.to_path_buf(),
        source,
    };
    let mut f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let meta = f.metadata().map_err(io)?;
    if let Some(why) = crate::config::unsafe_owner_or_mode(&meta) {
        return Err(Error::Validation(format!(
            "the trust list {} {why}: tresor refuses it, since whoever can write it decides \
             which project configs are used. Fix it (e.g. `chmod 600 {}`), or remove it and \
             trust your configs again",
            file.display(),
            shell_word(&file.display().to_string())
        )));
    }
    let mut text = String::new();
    Read::by_ref(&mut f)
        .take(MAX_LIST + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_LIST {
        return Err(Error::Validation(format!(
            "the trust list {} is larger than {MAX_LIST} bytes",
            file.display()
        )));
    }
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once('\t').filter(|(hash, path)| {
            hash.len() == 64
                && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && path.starts_with('/')
        });
        let Some((hash, path)) = parsed else {
            return Err(Error::Validation(format!(
                "the trust list {} line {} is not `<sha256 hex><TAB><absolute path>`",
                file.display(),
                i + 1
            )));
        };
        entries.push(Trusted {
            path: PathBuf::from(path),
            sha256: hash.to_string(),
        });
    }
    Ok(entries)
}

/// Changes the list under an exclusive lock (`trusted-configs.lock` beside
/// it): read, change, write a new file (0600), sync, rename over the old
/// one, sync the folder. Returns what `change` returned.
fn update(file: &Path, change: impl FnOnce(&mut Vec<Trusted>) -> bool) -> Result<bool> {
    let io = |path: &Path, source| Error::Io {
        store: "config trust".into(),
        path: path.to_path_buf(),
        source,
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let lock_path = file.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, e))?;
    lock.lock().map_err(|e| io(&lock_path, e))?;
    let mut entries = read_list(file)?;
    if !change(&mut entries) {
        return Ok(false);
    }
    let mut text = String::from(
        "# tresor: project configs you approved (`tresor config trust`): \
         <sha256 of the file><TAB><its absolute path>\n",
    );
    for t in &entries {
        text.push_str(&t.sha256);
        text.push('\t');
        text.push_str(&t.path.to_string_lossy());
        text.push('\n');
    }
    // The one private-file path: a new 0600 file, synced, renamed over the
    // list, the folder synced.
    crate::fs::write_private(file, text.as_bytes())?;
    drop(lock);
    Ok(true)
}

/// `text` as one shell word: as it is when it is plain, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(dir: &Path, name: &str, text: &str) -> ConfigFile {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        ConfigFile::read(&p).unwrap()
    }

    #[test]
    fn approval_is_per_path_and_content_and_can_be_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("data/tresor/trusted-configs");
        let a = config(dir.path(), "a.toml", "profile = \"x\"\n");
        let b = config(dir.path(), "b.toml", "profile = \"x\"\n");
        assert!(TrustList::trust_at(&list, &a).unwrap());
        assert!(!TrustList::trust_at(&list, &a).unwrap(), "already approved");
        let l = TrustList::open_at(&list).unwrap();
        assert_eq!(l.verdict(&a), Verdict::Trusted);
        // Same bytes elsewhere: not approved.
        assert_eq!(l.verdict(&b), Verdict::Unknown);
        let err = l.check(&b).unwrap_err();
        assert!(
            matches!(err, Error::Untrusted { changed: false, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("not trusted") && msg.contains("b.toml"),
            "{msg}"
        );
        // The list file is private, and one line per file.
        let meta = std::fs::metadata(&list).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&list).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1);
        assert!(text.contains(&a.sha256_hex()));
        // Changed bytes: approval gone, and the message says so.
        let a2 = config(dir.path(), "a.toml", "profile = \"y\"\n");
        let l = TrustList::open_at(&list).unwrap();
        assert!(matches!(l.verdict(&a2), Verdict::Changed { .. }));
        assert!(
            l.check(&a2)
                .unwrap_err()
                .to_string()
                .contains("changed since you approved it")
        );
        // Trusting again replaces the old hash.
        assert!(TrustList::trust_at(&list, &a2).unwrap());
        let l = TrustList::open_at(&list).unwrap();
        assert_eq!((l.entries().len(), l.verdict(&a2)), (1, Verdict::Trusted));
        // Untrust, also through another spelling of the path.
        let other_spelling = dir.path().join("data/../a.toml");
        assert!(TrustList::untrust_at(&list, &other_spelling).unwrap());
        assert!(!TrustList::untrust_at(&list, &other_spelling).unwrap());
        assert_eq!(
            TrustList::open_at(&list).unwrap().verdict(&a2),
            Verdict::Unknown
        );
    }

    #[test]
    fn a_list_others_can_write_or_that_is_malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("trusted-configs");
        let a = config(dir.path(), "a.toml", "");
        TrustList::trust_at(&list, &a).unwrap();
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o622)).unwrap();
        let e = TrustList::open_at(&list).unwrap_err().to_string();
        assert!(
            e.contains("writable by group or others") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::write(&list, "not a line\n").unwrap();
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = TrustList::open_at(&list).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/a/b/tresor.toml"), "/a/b/tresor.toml");
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
    }
}
