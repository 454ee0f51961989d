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
//! bounded pass ([`MAX_HEADER_BYTES`], [`MAX_HEADER_STANZAS`]).
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

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

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

mod stream;

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
    match positional_start(input)? {
        Some(start) => seal_to(
            &head,
            &key,
            &stream::Positional { file: input, start },
            &mut output,
            what,
        ),
        None => seal_to(
            &head,
            &key,
            &stream::Sequential::new(input),
            &mut output,
            what,
        ),
    }
}

/// Decrypts the age file `input` into `output`. Chunks are written as they
/// authenticate: on an error, `output` may hold a verified prefix (use
/// [`Output`] to discard it). `what` names the input in errors.
pub fn decrypt(
    with: &DecryptWith,
    input: impl Read + Send,
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let mut buffered = BufReader::with_capacity(BUF_LEN, input);
    let (header_len, key, identity) = decryption_header(with, &mut buffered, what)?;
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
    mut output: impl Write + Send,
    what: &str,
) -> Result<Copied> {
    let start = positional_start(input)?;
    let mut buffered = BufReader::with_capacity(BUF_LEN, input);
    let (header_len, key, identity) = decryption_header(with, &mut buffered, what)?;
    match start {
        Some(start) => open_to(
            header_len,
            identity,
            &key,
            &stream::Positional {
                file: input,
                start: start + header_len,
            },
            &mut output,
            what,
        ),
        None => open_to(
            header_len,
            identity,
            &key,
            &stream::Sequential::new(buffered),
            &mut output,
            what,
        ),
    }
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

/// The header (with the payload nonce after it) and the payload key of a
/// new file. The age crate wraps the file key and writes the header and its
/// MAC; the recipients are wrapped to see the file key go by.
fn encryption_header(to: &EncryptTo) -> Result<(Vec<u8>, PayloadKey)> {
    let file_key = RefCell::new(None);
    let passphrase;
    let list: Vec<&dyn age::Recipient> = match to {
        EncryptTo::Recipients(list) => {
            if list.is_empty() {
                return Err(Error::Validation("no recipients given".into()));
            }
            list.iter()
                .map(|r| r.as_ref() as &dyn age::Recipient)
                .collect()
        }
        EncryptTo::Passphrase(pw) => {
            passphrase = age::scrypt::Recipient::new(pw.clone());
            vec![&passphrase]
        }
    };
    let seen: Vec<SeeFileKey<'_, dyn age::Recipient>> = list
        .iter()
        .enumerate()
        .map(|(index, inner)| SeeFileKey {
            inner: *inner,
            index,
            file_key: &file_key,
        })
        .collect();
    let encryptor = age::Encryptor::with_recipients(seen.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| Error::Validation(format!("cannot encrypt to these recipients: {e}")))?;
    let mut head = Vec::with_capacity(256);
    // The stream writer is dropped unused: the payload is written below.
    drop(
        encryptor
            .wrap_output(&mut head)
            .map_err(|source| io_error("output", Path::new("output"), source))?,
    );
    let (_, file_key) = file_key
        .into_inner()
        .ok_or_else(|| Error::Validation("no recipients given".into()))?;
    let key = payload_key(&file_key, &head)?;
    Ok((head, key))
}

/// Reads and checks the header and the payload nonce; returns their length,
/// the payload key and which identity opened it. The header is read in one
/// bounded pass ([`read_header`]: at most [`MAX_HEADER_BYTES`] and
/// [`MAX_HEADER_STANZAS`]); the age crate parses it, unwraps the file key
/// and checks the header's MAC; the identities are wrapped to see the file
/// key go by.
fn decryption_header<R: Read>(
    with: &DecryptWith,
    input: &mut BufReader<R>,
    what: &str,
) -> Result<(u64, PayloadKey, Option<usize>)> {
    let head = match input.fill_buf() {
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
    // The header is read here in one bounded pass (line by line, up to the
    // MAC line) and then handed to age's parser whole: age re-parses all it
    // holds after every line it reads, which costs time quadratic in the
    // header's length.
    let header = read_header(input, what)?;
    let header_end = header.len();
    let mut header_nonce = header;
    header_nonce.resize(header_end + NONCE_LEN, 0);
    input
        .read_exact(&mut header_nonce[header_end..])
        .map_err(|e| payload_error(e, what))?;
    let pulls = Cell::new(0);
    let decryptor = age_decryptor(&header_nonce, header_end, &pulls).map_err(|e| {
        if matches!(e, age::DecryptError::UnknownFormat) {
            // A v1 header that does not parse falls back to "unknown version".
            Error::Integrity {
                store: what.into(),
                detail: "the age header is damaged".into(),
            }
        } else {
            decrypt_error(e, what)
        }
    })?;
    let file_key = RefCell::new(None);
    let scrypt_identity;
    let ids: Vec<&dyn age::Identity> = match with {
        DecryptWith::Identities(ids) => {
            if decryptor.is_scrypt() {
                return Err(Error::PassphraseNeeded { what: what.into() });
            }
            ids.iter()
                .map(|i| i.as_ref() as &dyn age::Identity)
                .collect()
        }
        DecryptWith::Passphrase(pw) => {
            if !decryptor.is_scrypt() {
                return Err(Error::Auth {
                    store: what.into(),
                    reason:
                        "the file is encrypted to recipients, not a passphrase; give an identity"
                            .into(),
                });
            }
            scrypt_identity = age::scrypt::Identity::new(pw.clone());
            vec![&scrypt_identity]
        }
    };
    let seen: Vec<SeeFileKey<'_, dyn age::Identity>> = ids
        .iter()
        .enumerate()
        .map(|(index, inner)| SeeFileKey {
            inner: *inner,
            index,
            file_key: &file_key,
        })
        .collect();
    // On success the MAC checked out under the file key seen last; the
    // stream reader it returns is not used.
    drop(
        decryptor
            .decrypt(seen.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| decrypt_error(e, what))?,
    );
    let (index, file_key) = file_key.into_inner().ok_or_else(|| Error::Auth {
        store: what.into(),
        reason: "no identity matches the file's recipients (wrong key?)".into(),
    })?;
    let key = payload_key(&file_key, &header_nonce)?;
    let index = matches!(with, DecryptWith::Identities(_)).then_some(index);
    Ok((header_nonce.len() as u64, key, index))
}

/// Reads an age v1 header through its MAC line (`--- …\n`) in one pass,
/// refusing it once it passes [`MAX_HEADER_BYTES`] or
/// [`MAX_HEADER_STANZAS`]: nothing after that point is read. Only the
/// line structure is looked at here; age checks the rest.
fn read_header<R: BufRead>(input: &mut R, what: &str) -> Result<Vec<u8>> {
    let mut header = Vec::with_capacity(256);
    let mut stanzas = 0usize;
    loop {
        let start = header.len();
        // One byte more than allowed, to tell "at the limit" from "over it".
        let room = (MAX_HEADER_BYTES - start) as u64 + 1;
        let n = (&mut *input)
            .take(room)
            .read_until(b'\n', &mut header)
            .map_err(|source| io_error("input", Path::new(what), source))?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(header_too_large(
                what,
                &format!("it is longer than {MAX_HEADER_BYTES} bytes"),
            ));
        }
        if n == 0 || header.last() != Some(&b'\n') {
            return Err(Error::Integrity {
                store: what.into(),
                detail: "the file is truncated inside its age header".into(),
            });
        }
        let line = &header[start..];
        if start == 0 {
            if line == MAGIC_V1 {
                continue;
            }
            // Another version ("age-encryption.org/v2").
            return Err(decrypt_error(age::DecryptError::UnknownFormat, what));
        }
        if line.starts_with(b"---") {
            return Ok(header);
        }
        if line.starts_with(b"->") {
            stanzas += 1;
            if stanzas > MAX_HEADER_STANZAS {
                return Err(header_too_large(
                    what,
                    &format!("it has more than {MAX_HEADER_STANZAS} recipient stanzas"),
                ));
            }
        }
    }
}

fn header_too_large(what: &str, why: &str) -> Error {
    Error::Integrity {
        store: what.into(),
        detail: format!(
            "the age header is refused: {why} (tresor reads headers of at most \
             {MAX_HEADER_BYTES} bytes and {MAX_HEADER_STANZAS} stanzas; no age tool writes \
             larger ones for a normal file, so it is damaged or hostile)"
        ),
    }
}

/// age's decryptor over a header read by [`read_header`] (`bytes[..header_end]`)
/// followed by the payload nonce; `pulls` counts the times age asked for
/// more header bytes.
fn age_decryptor<'a>(
    bytes: &'a [u8],
    header_end: usize,
    pulls: &'a Cell<usize>,
) -> std::result::Result<age::Decryptor<WholeHeader<'a>>, age::DecryptError> {
    age::Decryptor::new_buffered(WholeHeader {
        bytes,
        header_end,
        pos: 0,
        pulls,
    })
}

/// The header and nonce in memory, for age's buffered parser. That parser
/// re-parses all it holds after every `read_until` (quadratic time over a
/// header of many short lines); this reader answers the first `read_until`
/// with the whole header, already bounded and line-checked by
/// [`read_header`], so age parses it once. Reads past the header (the
/// nonce) behave as usual.
struct WholeHeader<'a> {
    bytes: &'a [u8],
    header_end: usize,
    pos: usize,
    pulls: &'a Cell<usize>,
}

impl Read for WholeHeader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.bytes[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl BufRead for WholeHeader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.bytes[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.bytes.len());
    }

    fn read_until(&mut self, byte: u8, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.pulls.set(self.pulls.get() + 1);
        let rest = &self.bytes[self.pos..];
        let n = if self.pos < self.header_end {
            self.header_end - self.pos
        } else {
            rest.iter()
                .position(|&b| b == byte)
                .map_or(rest.len(), |i| i + 1)
        };
        buf.extend_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// HKDF-SHA256(ikm = file key, salt = the payload nonce (the last 16 bytes
/// of `head`), info = "payload").
fn payload_key(file_key: &FileKey, head: &[u8]) -> Result<PayloadKey> {
    let nonce = head
        .len()
        .checked_sub(NONCE_LEN)
        .map(|at| &head[at..])
        .ok_or_else(|| Error::Validation("the age header is too short".into()))?;
    Ok(Zeroizing::new(age_core::primitives::hkdf(
        nonce,
        PAYLOAD_KEY_LABEL,
        file_key.expose_secret(),
    )))
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
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    let counts = stream::run(
        stream::Mode::Seal,
        key,
        source,
        output,
        stream::default_workers(),
    )
    .map_err(|e| stream_error(e, what))?;
    output
        .flush()
        .map_err(|source| io_error("output", Path::new("output"), source))?;
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
    let counts = stream::run(
        stream::Mode::Open,
        key,
        source,
        output,
        stream::default_workers(),
    )
    .map_err(|e| stream_error(e, what))?;
    output
        .flush()
        .map_err(|source| io_error("output", Path::new("output"), source))?;
    Ok(Copied {
        bytes_in: header_len + counts.read,
        bytes_out: counts.written,
        identity,
    })
}

/// A recipient or identity passed through to age, noting the file key it
/// wraps or unwraps (a copy, wiped on drop like every [`FileKey`]).
struct SeeFileKey<'a, T: ?Sized> {
    inner: &'a T,
    /// Its place among those given.
    index: usize,
    file_key: &'a RefCell<Option<(usize, FileKey)>>,
}

impl<T: ?Sized> SeeFileKey<'_, T> {
    fn note(&self, file_key: &FileKey) {
        let copy = FileKey::init_with_mut(|k| k.copy_from_slice(file_key.expose_secret()));
        *self.file_key.borrow_mut() = Some((self.index, copy));
    }
}

impl age::Recipient for SeeFileKey<'_, dyn age::Recipient> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        self.note(file_key);
        self.inner.wrap_file_key(file_key)
    }
}

impl age::Identity for SeeFileKey<'_, dyn age::Identity> {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        let r = self.inner.unwrap_stanza(stanza);
        if let Some(Ok(k)) = &r {
            self.note(k);
        }
        r
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[Stanza],
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        let r = self.inner.unwrap_stanzas(stanzas);
        if let Some(Ok(k)) = &r {
            self.note(k);
        }
        r
    }
}

/// Where the result goes: stdout, or a path. Plaintext goes to a path only
/// through [`crate::fs::PrivateFile`] (a new 0600 file renamed into place
/// on [`Output::commit`], never an existing FIFO, device or folder);
/// ciphertext may also go into an existing device or pipe (`-o /dev/null`).
/// Dropped without `commit`, nothing is left at the path and an existing
/// file there is left as it was.
pub struct Output {
    kind: OutputKind,
}

enum OutputKind {
    Stdout(io::Stdout),
    Direct(File, PathBuf),
    Private(crate::fs::PrivateFile),
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Self {
        Self {
            kind: OutputKind::Stdout(io::stdout()),
        }
    }

    /// A path for plaintext (`decrypt -o`): a new private file renamed over
    /// the path by [`Output::commit`]. An existing FIFO, device, socket or
    /// folder at the path is refused (exit code 2), and so is a symbolic link
    /// (neither followed nor replaced).
    pub fn path(path: &Path) -> Result<Self> {
        Ok(Self {
            kind: OutputKind::Private(crate::fs::PrivateFile::create(
                path,
                crate::fs::Existing::Replace,
            )?),
        })
    }

    /// A path for ciphertext (`encrypt -o`): as [`Output::path`], except
    /// that an existing device or pipe (`/dev/null`) is written directly:
    /// what is written there is encrypted.
    pub fn ciphertext_path(path: &Path) -> Result<Self> {
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
            && !meta.is_dir()
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| io_error("output", path, source))?;
            return Ok(Self {
                kind: OutputKind::Direct(file, path.to_path_buf()),
            });
        }
        Self::path(path)
    }

    /// Whether the output is a regular file (so a summary can be printed on stdout).
    pub fn is_file(&self) -> bool {
        matches!(self.kind, OutputKind::Private(..))
    }

    /// Finishes: flushes, and for a private file syncs it, renames it into
    /// place and syncs its folder.
    pub fn commit(mut self) -> Result<()> {
        match self.kind {
            OutputKind::Stdout(ref mut out) => out
                .flush()
                .map_err(|source| io_error("output", Path::new("stdout"), source)),
            OutputKind::Direct(ref mut f, ref path) => {
                f.flush().map_err(|source| io_error("output", path, source))
            }
            OutputKind::Private(file) => file.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.write(buf),
            OutputKind::Direct(f, _) => f.write(buf),
            OutputKind::Private(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.flush(),
            OutputKind::Direct(f, _) => f.flush(),
            OutputKind::Private(f) => f.flush(),
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

/// Maps a payload failure.
fn stream_error(e: stream::StreamError, what: &str) -> Error {
    use stream::StreamError as S;
    let store = what.to_string();
    match e {
        S::Read(source) => io_error("input", Path::new(what), source),
        S::Write(source) => io_error("output", Path::new("output"), source),
        S::Auth { chunk } => Error::Integrity {
            store,
            detail: format!(
                "the payload failed authentication at chunk {chunk}: the file was modified or damaged"
            ),
        },
        S::EmptyLast { chunk } => Error::Integrity {
            store,
            detail: format!("the payload's last chunk ({chunk}) is empty, which age never writes"),
        },
        S::Truncated => Error::Integrity {
            store,
            detail: "the file is truncated: its last chunk is missing".into(),
        },
        S::Shrank => Error::Io {
            store: "input".into(),
            path: PathBuf::from(what),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being encrypted",
            ),
        },
    }
}

/// Maps a read error while reading the header: age reports authentication
/// failures and truncation as InvalidData / UnexpectedEof.
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
        let e = decrypt(&with2, &sealed[..], Vec::new(), "t").unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
        let e = decrypt(&with, &bad[..], Vec::new(), "t").unwrap_err();
        assert!(matches!(e, Error::Integrity { .. }), "{e}");
    }

    const KAT_MATERIAL: [u8; 32] = [
        0x1c, 0x1d, 0x09, 0x76, 0x28, 0xd2, 0x4b, 0x70, 0xdf, 0x8e, 0x9c, 0xe2, 0xf7, 0x80, 0xe5,
        0x8f, 0x53, 0x6a, 0xc1, 0x75, 0xc9, 0x37, 0x72, 0x2b, 0xf4, 0x13, 0x7f, 0x33, 0xc2, 0xd3,
        0x66, 0xea,
    ];
    const KAT_IDENTITY: &str =
        "AGE-SECRET-KEY-1RSWSJA3G6F9HPHUWNN300Q893AFK4ST4EYMHY2L5ZDLN8SKNVM4QRRG9R3";
    const KAT_RECIPIENT: &str = "age1tzsde28wchhljc2e67pfz5wl70mp7z6jq9z85c8m2tlptqxuyqvshh0daj";

    #[test]
    fn named_key_material_maps_to_stock_age_keys() {
        // Made by stock `age-keygen` (Debian age 1.1): the identity's 32
        // bytes, its text, and `age-keygen -y` of it.
        let text = KAT_IDENTITY;
        let id: age::x25519::Identity = text.parse().unwrap();
        let material = tresor_crypto::Key::from_slice(&KAT_MATERIAL).unwrap();
        let made = identity_of(&material);
        assert_eq!(made.to_string().expose_secret(), text);
        assert_eq!(made.to_public().to_string(), KAT_RECIPIENT);
        assert_eq!(id.to_public().to_string(), KAT_RECIPIENT);
    }

    /// Counts the bytes read through it.
    struct Counting<'c, R> {
        inner: R,
        read: &'c std::sync::atomic::AtomicU64,
    }

    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(n)
        }
    }

    fn hostile(body: impl Fn(usize) -> Vec<u8>, len: usize) -> Vec<u8> {
        let mut file = MAGIC_V1.to_vec();
        let mut i = 0;
        while file.len() < len {
            file.extend(body(i));
            i += 1;
        }
        file
    }

    #[test]
    fn hostile_headers_are_refused_after_a_bounded_read() {
        // Before the fix, age's parser re-read the whole header after each
        // line: 240 KB of empty stanzas took over a minute, 8 MiB hours.
        let eight_mib = 8 << 20;
        let cases: Vec<(&str, Vec<u8>, String)> = vec![
            (
                "empty stanzas",
                hostile(|_| b"-> X\n\n".to_vec(), eight_mib),
                format!("more than {MAX_HEADER_STANZAS} recipient stanzas"),
            ),
            (
                "one long line",
                hostile(
                    |i| {
                        if i == 0 {
                            b"-> X ".to_vec()
                        } else {
                            vec![b'a'; 4096]
                        }
                    },
                    eight_mib,
                ),
                format!("longer than {MAX_HEADER_BYTES} bytes"),
            ),
            (
                "stanzas of 63-column body lines",
                hostile(|_| [&b"-> X\n"[..], &[b'A'; 63], b"\n"].concat(), eight_mib),
                format!("more than {MAX_HEADER_STANZAS} recipient stanzas"),
            ),
            (
                "one stanza of 64-column body lines",
                hostile(
                    |i| {
                        if i == 0 {
                            b"-> X\n".to_vec()
                        } else {
                            [&[b'B'; 64][..], b"\n"].concat()
                        }
                    },
                    eight_mib,
                ),
                format!("longer than {MAX_HEADER_BYTES} bytes"),
            ),
        ];
        let with = DecryptWith::Identities(vec![Box::new(age::x25519::Identity::generate())]);
        for (name, file, needle) in cases {
            let read = std::sync::atomic::AtomicU64::new(0);
            let started = std::time::Instant::now();
            let e = decrypt(
                &with,
                Counting {
                    inner: &file[..],
                    read: &read,
                },
                Vec::new(),
                "hostile.age",
            )
            .unwrap_err();
            let took = started.elapsed();
            assert!(matches!(e, Error::Integrity { .. }), "{name}: {e}");
            let text = e.to_string();
            assert!(text.contains(&needle), "{name}: {text}");
            assert!(text.contains("hostile.age"), "{name}: {text}");
            // The work is bounded by the cap, not by the file: at most the
            // cap and one read buffer of the 8 MiB are read.
            let read = read.into_inner();
            assert!(
                read <= (MAX_HEADER_BYTES + BUF_LEN) as u64,
                "{name}: read {read} bytes"
            );
            // Generous (a debug build takes milliseconds); the old code took
            // hours on these inputs.
            assert!(took < std::time::Duration::from_secs(5), "{name}: {took:?}");
        }
    }

    #[test]
    fn headers_at_the_limit_are_parsed_once() {
        // The most stanzas allowed, a well-formed MAC line and nonce: age's
        // parser pulls the header once (and once more for nothing, at the
        // start) and refuses it for its MAC, quickly.
        let mut file = MAGIC_V1.to_vec();
        for _ in 0..MAX_HEADER_STANZAS {
            file.extend(b"-> X\n\n");
        }
        file.extend(b"--- ");
        file.extend([b'A'; 43]);
        file.extend(b"\n");
        let header_end = file.len();
        file.extend([0u8; NONCE_LEN]);
        let header = read_header(&mut &file[..], "limit").unwrap();
        assert_eq!(header.len(), header_end);
        let pulls = Cell::new(0);
        let started = std::time::Instant::now();
        let d = age_decryptor(&file, header_end, &pulls).unwrap();
        assert!(
            pulls.get() <= 2,
            "age pulled the header {} times",
            pulls.get()
        );
        let id = age::x25519::Identity::generate();
        assert!(
            d.decrypt(std::iter::once(&id as &dyn age::Identity))
                .is_err()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // One stanza more is refused before age sees it.
        let mut over = MAGIC_V1.to_vec();
        for _ in 0..=MAX_HEADER_STANZAS {
            over.extend(b"-> X\n\n");
        }
        over.extend(&file[header_end - 48..]);
        let e = decrypt(
            &DecryptWith::Identities(vec![Box::new(id)]),
            &over[..],
            Vec::new(),
            "over",
        )
        .unwrap_err();
        assert!(e.to_string().contains("recipient stanzas"), "{e}");
    }

    #[test]
    fn many_recipients_still_decrypt_with_one_header_parse() {
        let ids: Vec<age::x25519::Identity> = (0..300)
            .map(|_| age::x25519::Identity::generate())
            .collect();
        let to = EncryptTo::Recipients(
            ids.iter()
                .map(|i| Box::new(i.to_public()) as Box<dyn age::Recipient + Send>)
                .collect(),
        );
        let mut sealed = Vec::new();
        encrypt(&to, &b"to many"[..], &mut sealed, "t").unwrap();
        let header_end = read_header(&mut &sealed[..], "t").unwrap().len();
        let pulls = Cell::new(0);
        drop(age_decryptor(&sealed, header_end, &pulls).unwrap());
        assert!(pulls.get() <= 2, "{}", pulls.get());
        let last = ids.into_iter().last().unwrap();
        let mut opened = Vec::new();
        let c = decrypt(
            &DecryptWith::Identities(vec![Box::new(last)]),
            &sealed[..],
            &mut opened,
            "t",
        )
        .unwrap();
        assert_eq!(opened, b"to many");
        assert_eq!(c.identity, Some(0));
    }

    #[test]
    fn roundtrips_and_failures() {
        for len in [0, 1, 65535, 65536, 65537, 131072] {
            roundtrip(len);
        }
    }
}
