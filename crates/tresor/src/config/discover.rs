//! Where the config is found ([`discover`]) and how a config file is read
//! ([`ConfigFile`]: one descriptor, owner and mode checked on it, bounded).

use super::*;

/// Where a config file was looked for and found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `--config PATH` or `TRESOR_CONFIG`: must exist. The user's explicit
    /// choice, so it needs no approval.
    Explicit(PathBuf),
    /// `./tresor.toml`: came with the folder, so it is used only once the
    /// user approved it ([`crate::trust`]).
    Project(PathBuf),
    /// `$XDG_CONFIG_HOME/tresor/config.toml`: the user's own.
    User(PathBuf),
    /// No config: the user vault alone.
    None,
}

impl Discovery {
    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Discovery::Explicit(p) | Discovery::Project(p) | Discovery::User(p) => Some(p),
            Discovery::None => None,
        }
    }

    /// How it was found: `explicit`, `project`, `user` or `none`.
    pub fn how(&self) -> &'static str {
        match self {
            Discovery::Explicit(_) => "explicit",
            Discovery::Project(_) => "project",
            Discovery::User(_) => "user",
            Discovery::None => "none",
        }
    }
}

/// Finds the config file: `explicit` (`--config`), else `TRESOR_CONFIG`,
/// else `./tresor.toml`, else `$XDG_CONFIG_HOME/tresor/config.toml`
/// (`~/.config/tresor/config.toml` when `XDG_CONFIG_HOME` is unset).
pub fn discover(explicit: Option<&Path>) -> Discovery {
    if let Some(p) = explicit {
        return Discovery::Explicit(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Discovery::Explicit(PathBuf::from(p));
    }
    let local = PathBuf::from(PROJECT_FILE);
    if local.is_file() {
        return Discovery::Project(local);
    }
    match user_config_path() {
        Some(p) if p.is_file() => Discovery::User(p),
        _ => Discovery::None,
    }
}

/// The project config's name, looked for in the current folder.
pub const PROJECT_FILE: &str = "tresor.toml";
/// Largest config file read.
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// The user config file: `$XDG_CONFIG_HOME/tresor/config.toml`, else
/// `~/.config/tresor/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("tresor").join("config.toml"))
}

/// A config file's bytes, read once from one open descriptor whose owner
/// and mode were checked on that descriptor (not on the path, which could
/// be swapped in between), with their SHA-256 and the file's canonical
/// path. What is approved ([`crate::trust`]) and what is parsed are these
/// same bytes.
///
/// Refused: anything but a regular file, a file owned by another user
/// (root's files excepted), a file group or others may write, a file larger
/// than [`MAX_CONFIG_LEN`], text that is not UTF-8.
#[derive(Clone)]
pub struct ConfigFile {
    path: PathBuf,
    canonical: PathBuf,
    sha256: [u8; 32],
    text: String,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may hold literal credentials.
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("canonical", &self.canonical)
            .field("sha256", &self.sha256_hex())
            .finish_non_exhaustive()
    }
}

impl ConfigFile {
    /// Opens `path`, checks the open file, reads it.
    pub fn read(path: &Path) -> Result<Self> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;

        let io = |source| Error::Io {
            store: "config".into(),
            path: path.to_path_buf(),
            source,
        };
        // O_NONBLOCK: a FIFO planted under the name must not hang the open.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::Validation(format!("the config file {} does not exist", path.display()))
                }
                _ => io(source),
            })?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(Error::Validation(format!(
                "the config file {} is not a regular file",
                path.display()
            )));
        }
        if let Some(why) = unsafe_owner_or_mode(&meta) {
            return Err(Error::Validation(format!(
                "the config file {} {why}: tresor refuses it, since whoever can change it decides \
                 which servers receive your tokens and values. {}",
                path.display(),
                fix_hint(path, &meta)
            )));
        }
        let mut bytes = Vec::new();
        (&file)
            .take(MAX_CONFIG_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_CONFIG_LEN {
            return Err(Error::Validation(format!(
                "the config file {} is larger than {MAX_CONFIG_LEN} bytes",
                path.display()
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Validation(format!(
                "the config file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let canonical = opened_path(&file)
            .or_else(|| std::fs::canonicalize(path).ok())
            .ok_or_else(|| {
                Error::Validation(format!(
                    "cannot find the absolute path of the config file {}",
                    path.display()
                ))
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            canonical,
            sha256,
            text,
        })
    }

    /// The path it was read from, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The canonical absolute path of the file that was opened.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// The SHA-256 of its bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The SHA-256 of its bytes, lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Its text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses it; every problem is in the error, one per line.
    pub fn parse(&self) -> Result<Config> {
        Config::parse(&self.text, Some(&self.path)).map_err(|problems| problems_error(&problems))
    }
}

/// Why a file with this metadata must not be trusted as config (or trust
/// list), or `None`: it must be owned by the current user or by root, and
/// not writable by group or others.
pub(crate) fn unsafe_owner_or_mode(meta: &std::fs::Metadata) -> Option<String> {
    use tresor_core::perm::{Closed, Owners, check};
    check(meta, Owners::MeOrRoot, Closed::ToWriters)
        .err()
        .map(|why| why.to_string())
}

fn fix_hint(path: &Path, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let word = crate::trust::shell_word(&path.display().to_string());
    let me = tresor_core::perm::current_uid();
    if meta.uid() != me && meta.uid() != 0 {
        format!(
            "Use a config of your own (copy it after reviewing it: `cp {word} ~/my-tresor.toml`)"
        )
    } else {
        format!("Fix it with `chmod go-w {word}`")
    }
}

/// The path of the file `file` has open (Linux: `/proc/self/fd`), so the
/// path recorded is the file that was read, whatever the name pointed at.
fn opened_path(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (link.is_absolute() && !link.to_string_lossy().ends_with(" (deleted)")).then_some(link)
}
