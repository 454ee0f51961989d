//! The PKCS#11 modules the user allowed: the `[pkcs11] modules` list of the
//! user's own config file, `$XDG_CONFIG_HOME/tresor/config.toml`
//! (`~/.config/tresor/config.toml` when `XDG_CONFIG_HOME` is unset).
//!
//! ```toml
//! [pkcs11]
//! modules = ["/opt/vendor/lib/libvendor-pkcs11.so"]
//! ```
//!
//! A vault's PKCS#11 key slot names its module, but the vault file does not
//! authenticate that path, and loading a module runs its code. So the unlock
//! chain loads a module only when this list names it or it is a root-owned
//! system library ([`tresor_vault::pkcs11::ModulePolicy`]). The list is read
//! from the user's own file only, never from a project's `tresor.toml`, and
//! only while that file is owned by the user and not writable by group or
//! others. `tresor keyslot add --pkcs11 --module PATH` appends to it
//! ([`allow_module`]), keeping the rest of the file as it was.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use tresor_core::{Error, Result};
use tresor_vault::pkcs11::ModulePolicy;

/// The largest config file read (it is a short list of paths and options).
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// The user's own config file: `$XDG_CONFIG_HOME/tresor/config.toml`, else
/// `$HOME/.config/tresor/config.toml`; `None` when neither variable is set.
pub fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .map(|d| d.join("tresor").join("config.toml"))
}

/// The module policy of the unlock chain: the modules the user's config
/// lists, and root-owned system libraries. A config that cannot be used
/// (not the user's, writable by others, not TOML, a list that is not
/// strings) allows system libraries only, and the refusals say why.
pub fn user_module_policy() -> ModulePolicy {
    let Some(path) = user_config_path() else {
        return ModulePolicy::default()
            .with_problem("neither XDG_CONFIG_HOME nor HOME is set, so there is no user config");
    };
    match read_modules(&path) {
        Ok(modules) => ModulePolicy::new(modules, Some(path)),
        Err(problem) => ModulePolicy::new(Vec::new(), Some(path)).with_problem(problem),
    }
}

/// What [`allow_module`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The config file.
    pub config: PathBuf,
    /// Whether the path was appended (false: it was listed already).
    pub added: bool,
}

/// Appends `module` (an absolute path) to `[pkcs11] modules` in the user's
/// config, creating the file (0600, its folder 0700) when missing. The rest
/// of the file, comments included, stays as it was; a path already listed
/// (the same file after resolving symlinks) is not added twice. The file
/// is replaced atomically (a new file renamed over it, its mode kept).
pub fn allow_module(module: &str) -> Result<Allowed> {
    let config = user_config_path().ok_or_else(|| {
        Error::Validation(
            "neither XDG_CONFIG_HOME nor HOME is set: tresor cannot record the PKCS#11 module \
             in your config"
                .into(),
        )
    })?;
    allow_module_in(&config, module)
}

/// [`allow_module`] for the config file at `config`.
fn allow_module_in(config: &Path, module: &str) -> Result<Allowed> {
    let config = config.to_path_buf();
    // A symlinked config (dotfiles) is edited where it lives.
    let target = std::fs::canonicalize(&config).unwrap_or_else(|_| config.clone());
    let bad = |why: String| {
        Error::Validation(format!(
            "cannot add the PKCS#11 module to {}: {why}",
            config.display()
        ))
    };
    let existing = match read_checked(&target) {
        Ok(found) => found,
        Err(ReadError::Io(e)) => {
            return Err(Error::Io {
                store: "config".into(),
                path: target,
                source: e,
            });
        }
        Err(ReadError::Refused(why)) => return Err(bad(why)),
    };
    let (text, mode) = existing.unwrap_or_else(|| (String::new(), 0o600));
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| bad(format!("it is not valid TOML: {}", e.message())))?;
    let table = doc
        .entry("pkcs11")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| bad("its pkcs11 key is not a table".into()))?;
    let list = table
        .entry("modules")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| bad("[pkcs11] modules is not an array of paths".into()))?;
    let resolved = std::fs::canonicalize(module).ok();
    let listed = list.iter().any(|v| {
        v.as_str().is_some_and(|s| {
            s == module || (resolved.is_some() && std::fs::canonicalize(s).ok() == resolved)
        })
    });
    if listed {
        return Ok(Allowed {
            config,
            added: false,
        });
    }
    list.push(module);
    write_config(&target, doc.to_string().as_bytes(), mode)?;
    Ok(Allowed {
        config,
        added: true,
    })
}

enum ReadError {
    Io(std::io::Error),
    Refused(String),
}

/// Reads the config at `path` if it exists, refusing one that is not a
/// regular file owned by the user, or that group or others may write
/// (checked on the opened file). Returns its text and permission bits.
fn read_checked(path: &Path) -> std::result::Result<Option<(String, u32)>, ReadError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Refused("it is not a regular file".into()));
    }
    use tresor_core::perm::{Closed, Distrust, Owners, check};
    match check(&meta, Owners::Me, Closed::ToWriters) {
        Ok(()) => {}
        Err(why @ Distrust::Owner { .. }) => return Err(ReadError::Refused(format!("it {why}"))),
        Err(why) => {
            return Err(ReadError::Refused(format!(
                "it {why}; run chmod go-w {}",
                path.display()
            )));
        }
    }
    if meta.len() > MAX_CONFIG_LEN {
        return Err(ReadError::Refused(format!(
            "it is larger than {MAX_CONFIG_LEN} bytes"
        )));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_LEN)
        .read_to_string(&mut text)
        .map_err(ReadError::Io)?;
    Ok(Some((text, meta.mode() & 0o7777)))
}

/// The `[pkcs11] modules` list of the config at `path` (empty when the file
/// or the list is missing), or why it cannot be used.
fn read_modules(path: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let text = match read_checked(path) {
        Ok(Some((text, _))) => text,
        Ok(None) => return Ok(Vec::new()),
        Err(ReadError::Io(e)) => return Err(format!("{}: {e}", path.display())),
        Err(ReadError::Refused(why)) => return Err(format!("{}: {why}", path.display())),
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("{}: {}", path.display(), e.message()))?;
    let Some(section) = doc.get("pkcs11") else {
        return Ok(Vec::new());
    };
    let not_list = || {
        format!(
            "{}: [pkcs11] modules must be an array of absolute paths",
            path.display()
        )
    };
    let Some(modules) = section.as_table_like().and_then(|t| t.get("modules")) else {
        return Ok(Vec::new());
    };
    let list = modules.as_array().ok_or_else(not_list)?;
    list.iter()
        .map(|v| v.as_str().map(PathBuf::from).ok_or_else(not_list))
        .collect()
}

/// Writes the config at `path` (its folder made 0700 if missing) through
/// the one private-file path, [`crate::fs`], keeping `mode`.
fn write_config(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            store: "config".into(),
            path: dir.to_path_buf(),
            source,
        })?;
    let mut file = crate::fs::PrivateFile::create(path, crate::fs::Existing::Replace)?;
    file.set_mode(mode)?;
    file.write_all(bytes).map_err(|source| Error::Io {
        store: "config".into(),
        path: path.to_path_buf(),
        source,
    })?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Appending keeps the rest of the file (comments, other tables), adds a
    /// path once, and makes a missing file 0600 in a 0700 folder.
    #[test]
    fn appending_keeps_the_file_and_adds_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tresor").join("config.toml");
        let list = |p: &Path| read_modules(p).unwrap();

        // Missing: created.
        let added = allow_module_in(&config, "/opt/a/libp11.so").unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(added.added);
        assert_eq!(added.config, config);
        assert_eq!(mode(&config), 0o600);
        assert_eq!(mode(config.parent().unwrap()), 0o700);
        assert_eq!(list(&config), [PathBuf::from("/opt/a/libp11.so")]);
        assert!(text.contains("[pkcs11]"), "{text}");

        // Existing, with other content: kept.
        let original = "# my tresor config\nprofile = \"dev\" # the usual\n\n\
                        [profiles.dev]\nstores = [\"vault\"]\n\n\
                        [pkcs11]\n# the vendor's module\nmodules = [\"/opt/a/libp11.so\"]\n";
        std::fs::write(&config, original).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let again = allow_module_in(&config, "/opt/a/libp11.so").unwrap();
        assert!(!again.added);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
        assert!(allow_module_in(&config, "/opt/b/libp11.so").unwrap().added);
        let text = std::fs::read_to_string(&config).unwrap();
        for kept in [
            "# my tresor config",
            "profile = \"dev\" # the usual",
            "[profiles.dev]",
            "# the vendor's module",
        ] {
            assert!(text.contains(kept), "{kept:?} lost:\n{text}");
        }
        assert_eq!(
            list(&config),
            [
                PathBuf::from("/opt/a/libp11.so"),
                PathBuf::from("/opt/b/libp11.so")
            ]
        );
        assert_eq!(mode(&config), 0o640, "the file's mode is kept");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(config.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.toml"]);
    }

    /// A config others may write is not trusted for the list, and is not
    /// appended to; the reason names the file and the fix.
    #[test]
    fn a_config_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tresor").join("config.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, "[pkcs11]\nmodules = [\"/opt/x.so\"]\n").unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
        let problem = read_modules(&config).unwrap_err();
        assert!(
            problem.contains("writable by group or others") && problem.contains("chmod go-w"),
            "{problem}"
        );
        let err = allow_module_in(&config, "/opt/y.so").unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert!(matches!(err, Error::Validation(_)));

        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_modules(&config).unwrap(), [PathBuf::from("/opt/x.so")]);
    }

    /// A list that is not strings is a problem the refusals report.
    #[test]
    fn a_malformed_list_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        for bad in [
            "[pkcs11]\nmodules = \"/x.so\"\n",
            "[pkcs11]\nmodules = [1]\n",
            "[pkcs11",
        ] {
            std::fs::write(&config, bad).unwrap();
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
            let problem = read_modules(&config).unwrap_err();
            assert!(problem.contains(&config.display().to_string()), "{problem}");
        }
        // No [pkcs11] table, or no file: an empty list.
        std::fs::write(&config, "profile = \"x\"\n").unwrap();
        assert!(read_modules(&config).unwrap().is_empty());
        assert!(
            read_modules(&dir.path().join("none.toml"))
                .unwrap()
                .is_empty()
        );
    }

    /// The user's config is also tresor's config (stores, profiles): its
    /// parser takes the [pkcs11] table.
    #[test]
    fn the_config_parser_accepts_the_pkcs11_table() {
        let text = "[pkcs11]\nmodules = [\"/opt/a/libp11.so\"]\n";
        let parsed = crate::config::Config::parse(text, None);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }
}
