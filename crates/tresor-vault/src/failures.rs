//! The unlock-failure sidecar `<vault>.failures`: a failed unlock cannot
//! write to the vault (no key, and a wrong password must leave `vault.db`
//! unchanged byte for byte), so it appends one line here; the next unlock
//! that can write folds the lines into the MAC-chained audit log as
//! `unlock_failed` entries and removes the file. See VAULT-FORMAT.md.
//!
//! The file holds no key material and nothing derived from a credential:
//! the time, the slot kind tried, where the credential came from (`prompt`,
//! `TRESOR_PASSWORD`, `key file PATH`, `session`), the OS user, uid and pid.
//! Without a key nothing here can be authenticated: each line carries a
//! checksum that catches garbling and casual edits, and a line that fails
//! it is reported as such, never trusted.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The first field of every line.
pub const MAGIC: &str = "tresor-unlock-failure";
/// At most this many bytes are kept; past it one `overflow` line is added
/// and later failures are counted only by that mark.
pub const MAX_BYTES: u64 = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The sidecar of the vault at `vault`: `vault.db` → `vault.db.failures`.
pub fn path_for(vault: &Path) -> PathBuf {
    let mut name = vault.as_os_str().to_os_string();
    name.push(".failures");
    PathBuf::from(name)
}

/// One failed unlock, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// When, in ms since the epoch.
    pub at: i64,
    /// The slot kind tried (`password`, `key-file`, `recovery`, `keychain`)
    /// or `session`.
    pub kind: String,
    /// Where the credential came from.
    pub source: String,
    /// The OS user name.
    pub user: String,
    /// The uid of the failing process.
    pub uid: u32,
    /// Its pid.
    pub pid: u32,
}

/// What reading the sidecar found.
#[derive(Debug, Default)]
pub struct Folded {
    /// Lines that checked.
    pub failures: Vec<Failure>,
    /// Lines that did not parse or failed their checksum.
    pub garbled: usize,
    /// Whether the file reached its size bound (later failures not listed).
    pub overflow: bool,
}

pub(crate) fn checksum(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn line(f: &Failure) -> String {
    let body = format!(
        "{MAGIC} v1\t{}\t{}\t{}\t{}\t{}\t{}",
        f.at,
        f.kind,
        f.uid,
        f.pid,
        B64.encode(f.user.as_bytes()),
        B64.encode(f.source.as_bytes())
    );
    let sum = checksum(&body);
    format!("{body}\t{sum}\n")
}

fn overflow_line(at: i64) -> String {
    let body = format!("{MAGIC} v1\t{at}\toverflow");
    let sum = checksum(&body);
    format!("{body}\t{sum}\n")
}

fn parse(text: &str) -> Result<Option<Failure>, ()> {
    let (body, sum) = text.rsplit_once('\t').ok_or(())?;
    if checksum(body) != sum {
        return Err(());
    }
    let fields: Vec<&str> = body.split('\t').collect();
    if fields.first() != Some(&format!("{MAGIC} v1").as_str()) {
        return Err(());
    }
    let at: i64 = fields.get(1).ok_or(())?.parse().map_err(|_| ())?;
    if fields.len() == 3 && fields[2] == "overflow" {
        let _ = at;
        return Ok(None);
    }
    if fields.len() != 7 {
        return Err(());
    }
    let text_field = |s: &str| -> Result<String, ()> {
        String::from_utf8(B64.decode(s).map_err(|_| ())?).map_err(|_| ())
    };
    let kind = fields[2];
    // Slot kinds: lower-case letters, digits and dashes ("key-file", "pkcs11").
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(());
    }
    Ok(Some(Failure {
        at,
        kind: kind.to_string(),
        uid: fields[3].parse().map_err(|_| ())?,
        pid: fields[4].parse().map_err(|_| ())?,
        user: text_field(fields[5])?,
        source: text_field(fields[6])?,
    }))
}

fn open_append(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Appends `failure` to the sidecar of `vault` (created 0600). Best effort
/// by design: the caller reports the failed unlock whatever happens here.
pub fn record(vault: &Path, failure: &Failure) -> std::io::Result<()> {
    let path = path_for(vault);
    for _ in 0..3 {
        let mut file = open_append(&path)?;
        file.lock()?;
        // The file may have been folded and unlinked while we waited for the
        // lock: then write to the new one instead.
        let ours = file.metadata()?;
        match fs::symlink_metadata(&path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
            _ => continue,
        }
        if !ours.is_file() {
            return Err(std::io::Error::other(
                "the failure sidecar is not a regular file",
            ));
        }
        let text = if ours.len() >= MAX_BYTES {
            let mut tail = vec![0u8; 0];
            // One overflow mark is enough: look at the last line.
            let mut read = fs::File::open(&path)?;
            read.read_to_end(&mut tail)?;
            let last = String::from_utf8_lossy(&tail);
            if last
                .lines()
                .last()
                .is_some_and(|l| l.contains("\toverflow\t"))
            {
                return Ok(());
            }
            overflow_line(failure.at)
        } else {
            line(failure)
        };
        return file.write_all(text.as_bytes());
    }
    Err(std::io::Error::other("the failure sidecar kept changing"))
}

/// The sidecar's lines, parsed; `None` when there is no sidecar. The file
/// stays locked by the returned handle until it is removed with [`remove`].
pub fn read(vault: &Path) -> std::io::Result<Option<(fs::File, Folded)>> {
    let path = path_for(vault);
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    file.lock()?;
    let mut bytes = Vec::new();
    // Bounded: a file grown past any sane size by someone else is read up
    // to twice the bound, and the rest counted as garbled.
    (&mut file)
        .take(2 * MAX_BYTES + 4096)
        .read_to_end(&mut bytes)?;
    let mut folded = fold(&bytes);
    if file.metadata()?.len() > bytes.len() as u64 {
        folded.garbled += 1;
    }
    Ok(Some((file, folded)))
}

/// The lines of a sidecar's bytes, parsed: a line that fails to parse or
/// its checksum, or a last line without its newline, counts as garbled.
pub(crate) fn fold(bytes: &[u8]) -> Folded {
    let mut folded = Folded::default();
    let complete = bytes.ends_with(b"\n") || bytes.is_empty();
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for (i, l) in lines.iter().enumerate() {
        if !complete && i + 1 == lines.len() {
            folded.garbled += 1;
            continue;
        }
        match parse(l) {
            Ok(Some(f)) => folded.failures.push(f),
            Ok(None) => folded.overflow = true,
            Err(()) => folded.garbled += 1,
        }
    }
    folded
}

/// Removes the sidecar read by [`read`] (its lock is still held).
pub fn remove(vault: &Path, _locked: fs::File) -> std::io::Result<()> {
    match fs::remove_file(path_for(vault)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The current process's uid and pid.
pub fn ids() -> (u32, u32) {
    (tresor_core::perm::real_uid(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fuzz target feeds the parser: lines given their checksum
    /// reach the fields behind it, and only well-formed ones count.
    #[test]
    fn fold_reads_checksummed_lines_and_counts_the_rest_garbled() {
        let good = line(&Failure {
            at: 1,
            kind: "key-file".into(),
            source: "prompt".into(),
            user: "u".into(),
            uid: 1000,
            pid: 7,
        });
        let bad_kind = format!("{MAGIC} v1\t1\tKEY\t1\t2\tdQ\tcA");
        let bad_kind = format!("{bad_kind}\t{}\n", checksum(&bad_kind));
        let text = format!("{good}{bad_kind}{}not a line\n", overflow_line(2));
        let folded = fold(text.as_bytes());
        assert_eq!(folded.failures.len(), 1);
        assert_eq!(folded.failures[0].pid, 7);
        assert_eq!(folded.garbled, 2);
        assert!(folded.overflow);
        assert_eq!(
            crate::fuzzing::fold_failures(good.trim_end().as_bytes()).garbled,
            1
        );
    }

    fn failure(kind: &str) -> Failure {
        Failure {
            at: 1_764_000_000_123,
            kind: kind.into(),
            source: "key file /tmp/a b\tc".into(),
            user: "root".into(),
            uid: 0,
            pid: 42,
        }
    }

    /// Known answers pin the line layout of VAULT-FORMAT.md (recomputed
    /// with Python's hashlib and base64).
    #[test]
    fn lines_match_known_answers() {
        let f = Failure {
            at: 1_764_000_000_123,
            kind: "password".into(),
            source: "TRESOR_PASSWORD".into(),
            user: "alice".into(),
            uid: 1000,
            pid: 4242,
        };
        assert_eq!(
            line(&f),
            "tresor-unlock-failure v1\t1764000000123\tpassword\t1000\t4242\tYWxpY2U\t\
             VFJFU09SX1BBU1NXT1JE\t9b7ca9c4cfbf81f3\n"
        );
        assert_eq!(
            overflow_line(1_764_000_000_123),
            "tresor-unlock-failure v1\t1764000000123\toverflow\t4f4bd972e96f156a\n"
        );
        assert_eq!(parse(line(&f).trim_end()), Ok(Some(f)));
    }

    #[test]
    fn lines_round_trip_and_garbling_shows() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        record(&vault, &failure("password")).unwrap();
        record(&vault, &failure("key-file")).unwrap();
        record(&vault, &failure("pkcs11")).unwrap();
        let meta = fs::metadata(path_for(&vault)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let (f, folded) = read(&vault).unwrap().unwrap();
        assert_eq!(
            folded.failures,
            vec![failure("password"), failure("key-file"), failure("pkcs11")]
        );
        assert_eq!(folded.garbled, 0);
        drop(f);
        // Flip one character of the first line: that line is garbled, the
        // second still checks.
        let path = path_for(&vault);
        let mut text = fs::read_to_string(&path).unwrap();
        text = text.replacen("password", "passwore", 1);
        text.push_str("junk without a newline");
        fs::write(&path, text).unwrap();
        let (f, folded) = read(&vault).unwrap().unwrap();
        assert_eq!(
            folded.failures,
            vec![failure("key-file"), failure("pkcs11")]
        );
        assert_eq!(folded.garbled, 2);
        remove(&vault, f).unwrap();
        assert!(!path.exists());
        assert!(read(&vault).unwrap().is_none());
    }

    #[test]
    fn the_file_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        for _ in 0..2000 {
            record(&vault, &failure("password")).unwrap();
        }
        let len = fs::metadata(path_for(&vault)).unwrap().len();
        assert!(len < MAX_BYTES + 512, "{len} bytes");
        let (_, folded) = read(&vault).unwrap().unwrap();
        assert!(folded.overflow);
        assert_eq!(folded.garbled, 0);
        assert!(folded.failures.len() < 2000);
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, path_for(&vault)).unwrap();
        assert!(record(&vault, &failure("password")).is_err());
        assert!(!target.exists());
    }
}
