//! File encryption in the age v1 format (<https://age-encryption.org/v1>):
//! to X25519 recipients (`age1…`) or to a passphrase (scrypt), readable and
//! writable by stock `age`.
//!
//! Data streams through age's 64 KiB chunks in constant memory, sealed and
//! opened on every core ([`encrypt`], [`decrypt`]; [`encrypt_file`] and
//! [`decrypt_file`] also read a regular file at many offsets at once). The
//! age crate wraps and unwraps the file key and writes and checks the header
//! and its MAC; the payload (STREAM: ChaCha20-Poly1305 from ring, 1 MiB
//! batches per worker, written in order) is sealed here, byte for byte as
//! age writes it. [`Output`] writes plaintext to a path through
//! [`crate::fs::PrivateFile`]: a new 0600 file in the same folder (unnamed
//! where the filesystem allows), renamed into place only once everything
//! was written, so a failed or interrupted decryption (truncated file,
//! flipped bit, wrong key, Ctrl-C) leaves no partial plaintext behind; an
//! existing FIFO or device at the path is refused. Headers are read in one
//! bounded pass ([`MAX_HEADER_BYTES`], [`MAX_HEADER_STANZAS`]) and checked
//! exactly against the specification (stanza bodies that end with a short
//! line, canonical base64, the shapes of X25519 and scrypt stanzas, scrypt
//! alone) before the age crate, whose own parser is more lenient, sees
//! them. A passphrase file asking for more scrypt work than
//! [`DecryptOptions::max_work_factor`] (2^22 by default) is refused before
//! any memory is allocated.
//!
//! Errors: a wrong identity or passphrase is [`Error::Auth`] (exit code 3);
//! a damaged, malformed or tampered file (a header outside the
//! specification, bad header MAC, a chunk failing authentication,
//! truncation) is [`Error::Integrity`] (exit code 4); a work factor above
//! the limit is [`Error::Validation`] (exit code 2).
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

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};

use std::path::{Path, PathBuf};
use tresor_core::progress::{Progress, Stage, Unit};

use age::secrecy::{ExposeSecret, SecretString};
use age_core::format::{FileKey, Stanza};
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

/// The highest scrypt work factor (log2 N) a passphrase file may ask for
/// unless [`DecryptOptions::max_work_factor`] says otherwise: 22, as stock
/// age (2^22 takes 4 GiB of memory; tresor and age write 2^18 or so).
pub const DEFAULT_MAX_WORK_FACTOR: u8 = 22;

/// Limits of a decryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecryptOptions {
    /// The highest scrypt work factor (log2 N) a passphrase file may ask
    /// for; a file asking for more is refused before any memory is
    /// allocated ([`refused_work_factor`] tells that error apart). The work
    /// and the memory (1 KiB × 2^N) double with each step: raise it only for
    /// a file you trust.
    pub max_work_factor: u8,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self {
            max_work_factor: DEFAULT_MAX_WORK_FACTOR,
        }
    }
}

/// Byte counts of one encryption or decryption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
    /// When decrypting with [`DecryptWith::Identities`]: the index of the
    /// identity that opened the file.
    pub identity: Option<usize>,
}

const BUF_LEN: usize = 64 * 1024;
const MAGIC: &[u8] = b"age-encryption.org/";
const MAGIC_V1: &[u8] = b"age-encryption.org/v1\n";
/// Bytes of the payload nonce after the header.
const NONCE_LEN: usize = 16;
/// The Bech32 human-readable part of an age X25519 identity.
const SECRET_KEY_HRP: &str = "age-secret-key-";
/// Most bytes an age header may take, from its first line through the MAC
/// line; a longer one is refused before more of it is read.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Most recipient stanzas an age header may hold (age writes one per
/// recipient; rage adds one random "grease" stanza).
pub const MAX_HEADER_STANZAS: usize = 4096;
/// HKDF info of the payload key.
const PAYLOAD_KEY_LABEL: &[u8] = b"payload";

mod errors;
mod header;
mod output;
mod stream;
#[cfg(test)]
mod tests;

pub use errors::refused_work_factor;
use errors::*;
use header::*;
pub use output::Output;

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

/// The age X25519 identity of a named key's material (an age key of the
/// vault, lent by [`Keys::age_use`](crate::Keys::age_use)). The text form it
/// passes through on the way is wiped.
///
/// ```
/// use tresor::files::{self, DecryptWith, EncryptTo};
/// use tresor::{AgeUse, CreateOptions, Credential, KeyType, SecretName, Vault, new_key_file_text};
///
/// let dir = tempfile::tempdir()?;
/// let credential = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
/// let mut vault =
///     Vault::create(&dir.path().join("vault.db"), &credential, &CreateOptions::default())?.vault;
/// let mut keys = vault.keys();
/// let name = SecretName::new("backups")?;
/// keys.create(&name, KeyType::AgeX25519)?;
///
/// // Encrypt to the newest version's public recipient (`tresor key recipient`)...
/// let recipient = keys.age_use(&name, AgeUse::Encrypt, |lent| {
///     let (version, material) = lent[0];
///     Ok((files::identity_of(material).to_public(), Some(version)))
/// })?;
/// let mut sealed = Vec::new();
/// let to = EncryptTo::Recipients(vec![Box::new(recipient)]);
/// files::encrypt(&to, &b"dump"[..], &mut sealed, "dump")?;
///
/// // ...and decrypt with whichever version the minimum allows.
/// let opened = keys.age_use(&name, AgeUse::Decrypt, |lent| {
///     let ids = lent.iter().map(|(_, m)| Box::new(files::identity_of(m)) as _).collect();
///     let mut out = Vec::new();
///     let copied = files::decrypt(&DecryptWith::Identities(ids), &sealed[..], &mut out, "dump")?;
///     Ok((out, copied.identity.map(|i| lent[i].0)))
/// })?;
/// assert_eq!(opened, b"dump");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn identity_of(material: &tresor_crypto::Key) -> age::x25519::Identity {
    let hrp = bech32::Hrp::parse(SECRET_KEY_HRP).expect("a valid human-readable part");
    // Sized for the whole text (74 characters) so it is never reallocated,
    // and uppercased in place: the only copy is the one wiped here.
    let mut text = Zeroizing::new(String::with_capacity(128));
    age_core::primitives::bech32_encode_to_fmt(&mut *text, hrp, material.expose_secret())
        .expect("writing to a String cannot fail");
    text.make_ascii_uppercase();
    text.parse()
        .expect("32 bytes encode to a valid age identity")
}

/// Encrypts everything `input` holds into `output` in the age v1 format.
/// `what` names the input in errors.
///
/// The input is read in order; sealing runs on every core. For a regular
/// file, [`encrypt_file`] reads on every core too.
pub fn encrypt(
    to: &EncryptTo,
    input: impl Read + Send,
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let (head, key) = encryption_header(to)?;
    seal_to(
        &head,
        &key,
        &stream::Sequential::new(input),
        &mut output,
        what,
    )
}

/// Encrypts a file from its current position to its end, like
/// [`encrypt`]; a regular file is read at many offsets at once (`pread`),
/// anything else (a pipe, a terminal) in order.
pub fn encrypt_file(
    to: &EncryptTo,
    input: &File,
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let (head, key) = encryption_header(to)?;
    let (positional, sequential);
    let source: &dyn stream::Source = match positional_start(input)? {
        Some(start) => {
            positional = stream::Positional { file: input, start };
            &positional
        }
        None => {
            sequential = stream::Sequential::new(input);
            &sequential
        }
    };
    seal_to(&head, &key, source, &mut output, what)
}

/// [`encrypt_file`], reporting the bytes written to `progress` (the
/// total is the input's size when it is a regular file).
pub fn encrypt_file_with(
    to: &EncryptTo,
    input: &File,
    output: impl Write + Send,
    what: &str,
    progress: &dyn Progress,
) -> Result<Copied> {
    let stage = Stage::start(progress, "encrypting", file_size(input), Unit::Bytes);
    encrypt_file(to, input, Counted::new(output, &stage), what)
}

/// [`decrypt_file`], reporting the bytes written to `progress` (the
/// total is the input's size when it is a regular file: the plaintext is
/// a little shorter).
pub fn decrypt_file_with(
    with: &DecryptWith,
    input: &File,
    output: impl Write + Send,
    what: &str,
    progress: &dyn Progress,
) -> Result<Copied> {
    decrypt_file_with_options(
        with,
        &DecryptOptions::default(),
        input,
        output,
        what,
        progress,
    )
}

/// [`decrypt_file_with`] under `options` (a higher scrypt work factor
/// limit).
pub fn decrypt_file_with_options(
    with: &DecryptWith,
    options: &DecryptOptions,
    input: &File,
    output: impl Write + Send,
    what: &str,
    progress: &dyn Progress,
) -> Result<Copied> {
    let stage = Stage::start(progress, "decrypting", file_size(input), Unit::Bytes);
    decrypt_file_options(with, options, input, Counted::new(output, &stage), what)
}

/// The size of a regular file from its current position; `None` for a
/// pipe or anything else whose size says nothing.
fn file_size(input: &File) -> Option<u64> {
    let meta = input
        .metadata()
        .ok()
        .filter(|m| m.is_file() && m.len() > 0)?;
    let mut f = input;
    let at = f.stream_position().unwrap_or(0);
    Some(meta.len().saturating_sub(at))
}

/// A writer that reports the bytes written through it to a progress stage.
struct Counted<'s, 'p, W> {
    inner: W,
    done: u64,
    stage: &'s Stage<'p>,
}

impl<'s, 'p, W> Counted<'s, 'p, W> {
    fn new(inner: W, stage: &'s Stage<'p>) -> Self {
        Self {
            inner,
            done: 0,
            stage,
        }
    }
}

impl<W: Write> Write for Counted<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        self.stage.update(self.done);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Checks the age header of the file at `path` as [`decrypt`] does before
/// it tries a passphrase (the bounded read, the strict check against the
/// specification, the scrypt work factor limit of `options`), without
/// trying one: a front end that asks for a passphrase asks only for a file
/// it would then go on to read.
pub fn check_header_before_passphrase(path: &Path, options: &DecryptOptions) -> Result<()> {
    let what = path.display().to_string();
    let file = File::open(path).map_err(|source| io_error("input", path, source))?;
    let header = read_header(&mut BufReader::new(file), &what)?;
    let checked = check_header(&header).map_err(|m| m.error(&what))?;
    match checked.scrypt_work_factor {
        Some(factor) if factor > u64::from(options.max_work_factor) => {
            Err(work_factor_refused(&what, factor, options.max_work_factor))
        }
        _ => Ok(()),
    }
}

/// Decrypts the age file `input` into `output`. Chunks are written as they
/// authenticate: on an error, `output` may hold a verified prefix (use
/// [`Output`] to discard it). `what` names the input in errors.
pub fn decrypt(
    with: &DecryptWith,
    input: impl Read + Send,
    output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    decrypt_with_options(with, &DecryptOptions::default(), input, output, what)
}

/// [`decrypt`] under `options` (a higher scrypt work factor limit).
pub fn decrypt_with_options(
    with: &DecryptWith,
    options: &DecryptOptions,
    input: impl Read + Send,
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let mut buffered = BufReader::with_capacity(BUF_LEN, input);
    let (header_len, key, identity) = decryption_header(with, options, &mut buffered, what)?;
    open_to(
        header_len,
        identity,
        &key,
        &stream::Sequential::new(buffered),
        &mut output,
        what,
    )
}

/// Decrypts an age file from its current position, like [`decrypt`]; a
/// regular file is read at many offsets at once (`pread`), anything else in
/// order.
pub fn decrypt_file(
    with: &DecryptWith,
    input: &File,
    output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    decrypt_file_options(with, &DecryptOptions::default(), input, output, what)
}

fn decrypt_file_options(
    with: &DecryptWith,
    options: &DecryptOptions,
    input: &File,
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let start = positional_start(input)?;
    let mut buffered = BufReader::with_capacity(BUF_LEN, input);
    let (header_len, key, identity) = decryption_header(with, options, &mut buffered, what)?;
    let (positional, sequential);
    let source: &dyn stream::Source = match start {
        Some(start) => {
            positional = stream::Positional {
                file: input,
                start: start + header_len,
            };
            &positional
        }
        None => {
            sequential = stream::Sequential::new(buffered);
            &sequential
        }
    };
    open_to(header_len, identity, &key, source, &mut output, what)
}

/// The payload key, wiped on drop.
type PayloadKey = Zeroizing<[u8; 32]>;

/// Where a regular file's unread part starts; `None` for anything that is
/// read in order (a pipe, a terminal, a socket, an empty "regular" file
/// such as those in /proc, whose size says nothing).
fn positional_start(file: &File) -> Result<Option<u64>> {
    let meta = file
        .metadata()
        .map_err(|source| io_error("input", Path::new("input"), source))?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    let mut f = file;
    Ok(f.stream_position().ok())
}

fn seal_to<S: stream::Source + ?Sized, W: Write + Send>(
    head: &[u8],
    key: &PayloadKey,
    source: &S,
    output: &mut W,
    what: &str,
) -> Result<Copied> {
    output
        .write_all(head)
        .map_err(|source| crate::fs::write_error("output", source))?;
    let counts = payload_to(stream::Mode::Seal, key, source, output, what)?;
    Ok(Copied {
        bytes_in: counts.read,
        bytes_out: head.len() as u64 + counts.written,
        identity: None,
    })
}

fn open_to<S: stream::Source + ?Sized, W: Write + Send>(
    header_len: u64,
    identity: Option<usize>,
    key: &PayloadKey,
    source: &S,
    output: &mut W,
    what: &str,
) -> Result<Copied> {
    let counts = payload_to(stream::Mode::Open, key, source, output, what)?;
    Ok(Copied {
        bytes_in: header_len + counts.read,
        bytes_out: counts.written,
        identity,
    })
}

/// Seals or opens the payload from `source` into `output` on every core,
/// then flushes `output`.
fn payload_to<S: stream::Source + ?Sized, W: Write + Send>(
    mode: stream::Mode,
    key: &PayloadKey,
    source: &S,
    output: &mut W,
    what: &str,
) -> Result<stream::Counts> {
    let counts = stream::run(mode, key, source, output, stream::default_workers())
        .map_err(|e| stream_error(e, what))?;
    output
        .flush()
        .map_err(|source| crate::fs::write_error("output", source))?;
    Ok(counts)
}

/// Entry points for the fuzz targets in `fuzz/` (not a public API: no
/// stability promise, hidden from the docs).
#[doc(hidden)]
pub mod fuzzing {
    use super::stream;

    /// Seals `plain` as an age v1 payload (without header or nonce) under
    /// the payload key `key`, with `workers` threads.
    pub fn seal_payload(key: &[u8; 32], plain: &[u8], workers: usize) -> Vec<u8> {
        let mut out = Vec::new();
        stream::run(
            stream::Mode::Seal,
            key,
            &stream::Sequential::new(plain),
            &mut out,
            workers,
        )
        .expect("sealing into memory cannot fail");
        out
    }

    /// Opens an age v1 payload sealed under `key` as [`super::decrypt`]
    /// does after the header, with `workers` threads. `Err` names the
    /// failure (no plaintext is returned on failure).
    pub fn open_payload(key: &[u8; 32], sealed: &[u8], workers: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match stream::run(
            stream::Mode::Open,
            key,
            &stream::Sequential::new(sealed),
            &mut out,
            workers,
        ) {
            Ok(_) => Ok(out),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}
