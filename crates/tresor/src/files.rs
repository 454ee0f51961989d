//! File encryption in the age v1 format (<https://age-encryption.org/v1>):
//! to X25519 recipients (`age1…`) or to a passphrase (scrypt), readable and
//! writable by stock `age`.
//!
//! Data streams through age's 64 KiB chunks in constant memory
//! ([`encrypt`], [`decrypt`]). [`Output`] writes a regular file through a
//! temporary file (0600) in the same folder, renamed into place only once
//! everything was written, so a failed decryption (truncated file, flipped
//! bit, wrong key) leaves no partial plaintext behind; non-regular outputs
//! (`/dev/null`, a pipe) are written directly.
//!
//! Errors: a wrong identity or passphrase is [`Error::Auth`] (exit code 3);
//! a damaged or tampered file (bad header MAC, a chunk failing
//! authentication, truncation) is [`Error::Integrity`] (exit code 4).
//!
//! ```
//! use tresor::files::{self, DecryptWith, EncryptTo, age};
//!
//! let identity = age::x25519::Identity::generate();
//! let to = EncryptTo::Recipients(vec![files::parse_recipient(&identity.to_public().to_string())?]);
//! let mut sealed = Vec::new();
//! files::encrypt(&to, &b"hello"[..], &mut sealed, "input")?;
//! let mut opened = Vec::new();
//! let with = DecryptWith::Identities(vec![Box::new(identity)]);
//! files::decrypt(&with, &sealed[..], &mut opened, "input")?;
//! assert_eq!(opened, b"hello");
//! # Ok::<(), tresor::Error>(())
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use tresor_core::{Error, Result};

pub use age;

/// Who can decrypt what [`encrypt`] writes.
pub enum EncryptTo {
    /// Age recipients (X25519 public keys, `age1…`); at least one.
    Recipients(Vec<Box<dyn age::Recipient + Send>>),
    /// A passphrase (scrypt, work factor tuned to about a second here).
    Passphrase(SecretString),
}

/// How [`decrypt`] opens a file.
pub enum DecryptWith {
    /// Identities (X25519 secret keys), e.g. from [`read_identity_file`].
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
    /// The passphrase the file was encrypted with.
    Passphrase(SecretString),
}

/// Byte counts of one encryption or decryption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
}

const BUF_LEN: usize = 64 * 1024;
const MAGIC: &[u8] = b"age-encryption.org/";
const MAGIC_V1: &[u8] = b"age-encryption.org/v1\n";

/// Parses one recipient: an X25519 public key, `age1…`.
pub fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>> {
    let text = text.trim();
    text.parse::<age::x25519::Recipient>()
        .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
        .map_err(|e| {
            Error::Validation(format!(
                "invalid age recipient \"{}\": {e} (only X25519 recipients, age1…, are supported)",
                shorten(text)
            ))
        })
}

/// Reads a recipients file: one recipient a line; blank lines and `#`
/// comments are skipped.
pub fn read_recipients_file(path: &Path) -> Result<Vec<Box<dyn age::Recipient + Send>>> {
    let file = File::open(path).map_err(|source| io_error("recipients", path, source))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| io_error("recipients", path, source))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            parse_recipient(line).map_err(|e| {
                Error::Validation(format!("{}: line {}: {e}", path.display(), n + 1))
            })?,
        );
    }
    if out.is_empty() {
        return Err(Error::Validation(format!(
            "{}: no recipients in the file",
            path.display()
        )));
    }
    Ok(out)
}

/// Reads a stock age identity file (`AGE-SECRET-KEY-1…` lines, `#`
/// comments), as `age-keygen` writes it.
pub fn read_identity_file(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let file = File::open(path).map_err(|source| io_error("identity", path, source))?;
    let ids = age::IdentityFile::from_buffer(BufReader::new(file))
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => Error::Validation(format!(
                "{}: not an age identity file ({e})",
                path.display()
            )),
            _ => io_error("identity", path, e),
        })?
        .into_identities()
        .map_err(|e| Error::Validation(format!("{}: unsupported identity: {e}", path.display())))?;
    if ids.is_empty() {
        return Err(Error::Validation(format!(
            "{}: no identities in the file",
            path.display()
        )));
    }
    Ok(ids)
}

/// Encrypts everything `input` holds into `output` in the age v1 format.
/// `what` names the input in errors.
pub fn encrypt(to: &EncryptTo, input: impl Read, output: impl Write, what: &str) -> Result<Copied> {
    let encryptor = match to {
        EncryptTo::Recipients(list) => {
            if list.is_empty() {
                return Err(Error::Validation("no recipients given".into()));
            }
            age::Encryptor::with_recipients(list.iter().map(|r| r.as_ref() as &dyn age::Recipient))
                .map_err(|e| {
                    Error::Validation(format!("cannot encrypt to these recipients: {e}"))
                })?
        }
        EncryptTo::Passphrase(pw) => age::Encryptor::with_user_passphrase(pw.clone()),
    };
    let mut input = Counting::new(input);
    let mut output = Counting::new(output);
    let mut writer = encryptor
        .wrap_output(&mut output)
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    let mut buf = Zeroizing::new(vec![0u8; BUF_LEN]);
    loop {
        let n = match input.read(&mut buf[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(io_error("input", Path::new(what), source)),
        };
        writer
            .write_all(&buf[..n])
            .map_err(|source| io_error("output", Path::new("output"), source))?;
    }
    writer
        .finish()
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    output
        .flush()
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    Ok(Copied {
        bytes_in: input.count,
        bytes_out: output.count,
    })
}

/// Decrypts the age file `input` into `output`. Chunks are written as they
/// authenticate: on an error, `output` may hold a verified prefix (use
/// [`Output`] to discard it). `what` names the input in errors.
pub fn decrypt(
    with: &DecryptWith,
    input: impl Read,
    output: impl Write,
    what: &str,
) -> Result<Copied> {
    let mut input = Counting::new(input);
    let mut output = Counting::new(output);
    {
        let mut buffered = BufReader::with_capacity(BUF_LEN, &mut input);
        let head = match buffered.fill_buf() {
            Ok(b) => b[..b.len().min(MAGIC_V1.len())].to_vec(),
            Err(e) => return Err(io_error("input", Path::new(what), e)),
        };
        if !head.starts_with(&MAGIC_V1[..head.len().min(MAGIC.len())]) || head.is_empty() {
            let armored = head.starts_with(b"-----BEGIN");
            return Err(Error::Validation(format!(
                "{what}: not an age file{}",
                if armored {
                    " (ASCII-armored age files are not supported; `age -d` reads them)"
                } else {
                    ""
                }
            )));
        }
        let decryptor = age::Decryptor::new_buffered(buffered).map_err(|e| {
            if matches!(e, age::DecryptError::UnknownFormat) && head == MAGIC_V1 {
                // A v1 header that does not parse falls back to "unknown version".
                Error::Integrity {
                    store: what.into(),
                    detail: "the age header is damaged".into(),
                }
            } else {
                decrypt_error(e, what)
            }
        })?;
        let mut reader = match with {
            DecryptWith::Identities(ids) => {
                if decryptor.is_scrypt() {
                    return Err(Error::Auth {
                        store: what.into(),
                        reason: "the file is encrypted to a passphrase; give --passphrase or --passphrase-file".into(),
                    });
                }
                decryptor.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            }
            DecryptWith::Passphrase(pw) => {
                if !decryptor.is_scrypt() {
                    return Err(Error::Auth {
                        store: what.into(),
                        reason: "the file is encrypted to recipients, not a passphrase; give -i IDENTITY_FILE".into(),
                    });
                }
                let id = age::scrypt::Identity::new(pw.clone());
                decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
            }
        }
        .map_err(|e| decrypt_error(e, what))?;
        let mut buf = Zeroizing::new(vec![0u8; BUF_LEN]);
        loop {
            let n = match reader.read(&mut buf[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(payload_error(e, what)),
            };
            output
                .write_all(&buf[..n])
                .map_err(|source| io_error("output", Path::new("output"), source))?;
        }
    }
    output
        .flush()
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    Ok(Copied {
        bytes_in: input.count,
        bytes_out: output.count,
    })
}

/// Where the result goes: stdout, a device or pipe written directly, or a
/// regular file written through a temporary file and renamed on
/// [`Output::commit`]. Dropped without `commit`, the temporary file is
/// removed and an existing file at the path is left as it was.
pub struct Output {
    kind: OutputKind,
}

enum OutputKind {
    Stdout(io::Stdout),
    Direct(File, PathBuf),
    Atomic(tempfile::NamedTempFile, PathBuf),
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Self {
        Self {
            kind: OutputKind::Stdout(io::stdout()),
        }
    }

    /// A path: an existing non-regular file (`/dev/null`, a FIFO) is opened
    /// for writing; anything else gets a temporary file (0600) in the same
    /// folder, renamed over the path by [`Output::commit`].
    pub fn path(path: &Path) -> Result<Self> {
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(Error::Validation(format!(
                    "{}: is a directory",
                    path.display()
                )));
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| io_error("output", path, source))?;
            return Ok(Self {
                kind: OutputKind::Direct(file, path.to_path_buf()),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // tempfile creates the file 0600.
        let temp = tempfile::Builder::new()
            .prefix(".tresor-tmp-")
            .tempfile_in(dir)
            .map_err(|source| io_error("output", path, source))?;
        Ok(Self {
            kind: OutputKind::Atomic(temp, path.to_path_buf()),
        })
    }

    /// Whether the output is a regular file (so a summary can be printed on stdout).
    pub fn is_file(&self) -> bool {
        matches!(self.kind, OutputKind::Atomic(..))
    }

    /// Finishes: flushes, and for a regular file syncs and renames the
    /// temporary file into place.
    pub fn commit(mut self) -> Result<()> {
        match self.kind {
            OutputKind::Stdout(ref mut out) => out
                .flush()
                .map_err(|source| io_error("output", Path::new("stdout"), source)),
            OutputKind::Direct(ref mut f, ref path) => {
                f.flush().map_err(|source| io_error("output", path, source))
            }
            OutputKind::Atomic(temp, path) => {
                temp.as_file()
                    .sync_all()
                    .map_err(|source| io_error("output", &path, source))?;
                temp.persist(&path)
                    .map_err(|e| io_error("output", &path, e.error))?;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.write(buf),
            OutputKind::Direct(f, _) => f.write(buf),
            OutputKind::Atomic(t, _) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.flush(),
            OutputKind::Direct(f, _) => f.flush(),
            OutputKind::Atomic(t, _) => t.flush(),
        }
    }
}

/// Maps age's header and key errors: wrong key or passphrase → Auth,
/// damaged or tampered header → Integrity.
fn decrypt_error(e: age::DecryptError, what: &str) -> Error {
    use age::DecryptError as D;
    let store = what.to_string();
    match e {
        D::NoMatchingKeys => Error::Auth {
            store,
            reason: "no identity matches the file's recipients (wrong key?)".into(),
        },
        D::DecryptionFailed | D::KeyDecryptionFailed => Error::Auth {
            store,
            reason: "wrong passphrase or key".into(),
        },
        D::InvalidMac => Error::Integrity {
            store,
            detail: "the age header's MAC does not match: the file was modified or damaged".into(),
        },
        D::InvalidHeader => Error::Integrity {
            store,
            detail: "not an age v1 file, or its header is damaged".into(),
        },
        D::UnknownFormat => {
            Error::Validation(format!("{what}: not an age v1 file (unknown format)"))
        }
        D::ExcessiveWork { required, target } => Error::Validation(format!(
            "{what}: the passphrase work factor 2^{required} is far above this machine's 2^{target}; refused"
        )),
        D::Io(e) => payload_error(e, what),
        other => Error::Integrity {
            store,
            detail: other.to_string(),
        },
    }
}

/// Maps a read error while decrypting: age reports authentication failures
/// and truncation as InvalidData / UnexpectedEof.
fn payload_error(e: io::Error, what: &str) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => Error::Integrity {
            store: what.into(),
            detail: format!(
                "the payload failed authentication ({e}): the file was modified or damaged"
            ),
        },
        io::ErrorKind::UnexpectedEof => Error::Integrity {
            store: what.into(),
            detail: format!("the file is truncated ({e})"),
        },
        _ => io_error("input", Path::new(what), e),
    }
}

fn io_error(store: &str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        store: store.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(24).collect();
    if text.chars().count() > 24 {
        s.push('…');
    }
    s
}

/// Counts the bytes passing through.
struct Counting<T> {
    inner: T,
    count: u64,
}

impl<T> Counting<T> {
    fn new(inner: T) -> Self {
        Self { inner, count: 0 }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let identity = age::x25519::Identity::generate();
        let to = EncryptTo::Recipients(vec![Box::new(identity.to_public())]);
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut sealed = Vec::new();
        let c = encrypt(&to, &data[..], &mut sealed, "t").unwrap();
        assert_eq!(c.bytes_in, len as u64);
        assert_eq!(c.bytes_out, sealed.len() as u64);
        let with = DecryptWith::Identities(vec![Box::new(identity)]);
        let mut opened = Vec::new();
        let c = decrypt(&with, &sealed[..], &mut opened, "t").unwrap();
        assert_eq!(opened, data);
        assert_eq!(c.bytes_out, len as u64);
        // A flipped bit in the last byte (payload) is an integrity error.
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        let with2 = DecryptWith::Identities(vec![Box::new(age::x25519::Identity::generate())]);
        let e = decrypt(&with2, &sealed[..], &mut Vec::new(), "t").unwrap_err();
        assert_eq!(e.exit_code() as u8, 3, "{e}");
        let e = decrypt(&with, &bad[..], &mut Vec::new(), "t").unwrap_err();
        assert_eq!(e.exit_code() as u8, 4, "{e}");
    }

    #[test]
    fn roundtrips_and_failures() {
        for len in [0, 1, 65535, 65536, 65537, 131072] {
            roundtrip(len);
        }
    }
}
