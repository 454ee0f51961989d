//! The age header: written (the file key wrapped to each recipient, the
//! MAC) and read back in one bounded pass, with the recipients and
//! identities wrapped so the file key can be seen going by; and the payload
//! key derived from the file key.

use super::*;

/// The header (with the payload nonce after it) and the payload key of a
/// new file. The age crate wraps the file key and writes the header and its
/// MAC; the recipients are wrapped to see the file key go by.
pub(super) fn encryption_header(to: &EncryptTo) -> Result<(Vec<u8>, PayloadKey)> {
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
    let seen = SeeFileKey::all(&list, &file_key);
    let encryptor = age::Encryptor::with_recipients(seen.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| Error::Validation(format!("cannot encrypt to these recipients: {e}")))?;
    let mut head = Vec::with_capacity(256);
    // The stream writer is dropped unused: the payload is written below.
    drop(
        encryptor
            .wrap_output(&mut head)
            .map_err(|source| crate::fs::write_error("output", source))?,
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
pub(super) fn decryption_header<R: Read>(
    with: &DecryptWith,
    options: &DecryptOptions,
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
    // Strictly as the specification says, before age's own (more lenient)
    // parser sees it, and before any key or passphrase is tried.
    let checked = check_header(&header).map_err(|m| m.error(what))?;
    if let (DecryptWith::Passphrase(_), Some(factor)) = (with, checked.scrypt_work_factor)
        && factor > u64::from(options.max_work_factor)
    {
        return Err(work_factor_refused(what, factor, options.max_work_factor));
    }
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
            let mut identity = age::scrypt::Identity::new(pw.clone());
            identity.set_max_work_factor(options.max_work_factor);
            scrypt_identity = identity;
            vec![&scrypt_identity]
        }
    };
    let seen = SeeFileKey::all(&ids, &file_key);
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
pub(super) fn read_header<R: BufRead>(input: &mut R, what: &str) -> Result<Vec<u8>> {
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

pub(super) fn header_too_large(what: &str, why: &str) -> Error {
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
pub(super) fn age_decryptor<'a>(
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
pub(super) struct WholeHeader<'a> {
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
pub(super) fn payload_key(file_key: &FileKey, head: &[u8]) -> Result<PayloadKey> {
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
/// A recipient or identity passed through to age, noting the file key it
/// wraps or unwraps (a copy, wiped on drop like every [`FileKey`]).
pub(super) struct SeeFileKey<'a, T: ?Sized> {
    inner: &'a T,
    /// Its place among those given.
    index: usize,
    file_key: &'a RefCell<Option<(usize, FileKey)>>,
}

impl<'a, T: ?Sized> SeeFileKey<'a, T> {
    /// Each of `list`, wrapped, noting into `file_key`.
    fn all(list: &[&'a T], file_key: &'a RefCell<Option<(usize, FileKey)>>) -> Vec<Self> {
        list.iter()
            .enumerate()
            .map(|(index, inner)| SeeFileKey {
                inner: *inner,
                index,
                file_key,
            })
            .collect()
    }

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

/// Columns of a full stanza body line; the last line of a body is shorter.
const BODY_COLUMNS: usize = 64;
const X25519_TAG: &[u8] = b"X25519";
const SCRYPT_TAG: &[u8] = b"scrypt";

/// What [`check_header`] learnt from a header that follows the
/// specification.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Checked {
    /// The scrypt work factor (log2 N) of a passphrase file.
    pub(super) scrypt_work_factor: Option<u64>,
}

/// Why a header was refused: its 1-based line and what is wrong there.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed {
    pub(super) line: usize,
    pub(super) why: &'static str,
}

impl Malformed {
    pub(super) fn error(&self, what: &str) -> Error {
        Error::Integrity {
            store: what.into(),
            detail: format!(
                "the age header is malformed: line {}: {} (tresor reads age headers only \
                 exactly as the age v1 specification writes them)",
                self.line, self.why
            ),
        }
    }
}

fn malformed(line: usize, why: &'static str) -> Malformed {
    Malformed { line, why }
}

/// One recipient stanza as [`check_header`] saw it.
struct StanzaShape<'h> {
    /// The 1-based line of its `->` line.
    line: usize,
    /// Its arguments; the first is its type.
    args: Vec<&'h [u8]>,
    /// The decoded length of its body.
    body_len: usize,
}

/// Canonical unpadded base64 (RFC 4648 §3.5): no `=`, no set trailing
/// bits, no other characters; the decoded bytes.
fn canonical_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
}

/// Checks an age v1 header (as [`read_header`] returns it: through the MAC
/// line) against the specification's grammar and the rules of the native
/// stanzas, before any key is tried:
///
/// - the version line, then one or more stanzas, then `--- ` and 43
///   characters of base64 (a 32-byte MAC), each line ending in a line feed;
/// - a stanza line is `-> ` and arguments of visible ASCII separated by
///   single spaces (no empty argument, no stray space);
/// - a stanza body is base64 wrapped at 64 columns and always ends with a
///   line shorter than 64 columns, empty when the body is a multiple of 48
///   bytes (so a stanza with no body line, or whose body ends on a full
///   line, is refused); base64 is canonical and unpadded;
/// - an `X25519` stanza has one argument, the canonical base64 of 32 bytes,
///   and a 32-byte body; an `scrypt` stanza has a 16-byte salt and a decimal
///   work factor without leading zeros, a 32-byte body, and is the only
///   stanza in the header. These hold for every such stanza, wherever it
///   is: whether a file is well formed does not depend on the key tried.
pub(super) fn check_header(header: &[u8]) -> std::result::Result<Checked, Malformed> {
    let mut lines = Vec::new();
    for (i, line) in header.split_inclusive(|&b| b == b'\n').enumerate() {
        lines.push(
            line.strip_suffix(b"\n")
                .ok_or(malformed(i + 1, "the header does not end with a line feed"))?,
        );
    }
    if lines.first() != Some(&&MAGIC_V1[..MAGIC_V1.len() - 1]) {
        return Err(malformed(
            1,
            "the first line is not \"age-encryption.org/v1\"",
        ));
    }
    let mut stanzas: Vec<StanzaShape<'_>> = Vec::new();
    let mut n = 1;
    loop {
        let Some(line) = lines.get(n) else {
            return Err(malformed(n, "the header ends without its MAC line"));
        };
        if line.starts_with(b"---") {
            check_mac_line(line).map_err(|why| malformed(n + 1, why))?;
            if n + 1 != lines.len() {
                return Err(malformed(n + 2, "a line follows the MAC line"));
            }
            break;
        }
        let start = n + 1;
        let args = stanza_args(line).map_err(|why| malformed(start, why))?;
        n += 1;
        let mut body_len = 0;
        loop {
            let Some(body) = lines.get(n) else {
                return Err(malformed(n, "the header ends inside a stanza body"));
            };
            if body.starts_with(b"->") || body.starts_with(b"---") {
                // A missing body is the stanza line's fault.
                return Err(malformed(
                    if n == start { start } else { n + 1 },
                    if n == start {
                        "a stanza has no body line (its body must end with a line shorter \
                         than 64 columns, an empty one if need be)"
                    } else {
                        "a stanza body ends without a line shorter than 64 columns (an \
                         empty line must follow a body that fills its last line)"
                    },
                ));
            }
            if body.len() > BODY_COLUMNS {
                return Err(malformed(
                    n + 1,
                    "a stanza body line is longer than 64 columns",
                ));
            }
            let bytes = canonical_base64(body).ok_or(malformed(
                n + 1,
                "a stanza body line is not canonical unpadded base64",
            ))?;
            body_len += bytes.len();
            n += 1;
            if body.len() < BODY_COLUMNS {
                break;
            }
        }
        stanzas.push(StanzaShape {
            line: start,
            args,
            body_len,
        });
    }
    if stanzas.is_empty() {
        return Err(malformed(2, "the header has no recipient stanza"));
    }
    let mut scrypt_work_factor = None;
    for s in &stanzas {
        if s.args[0] == X25519_TAG {
            check_x25519(s).map_err(|why| malformed(s.line, why))?;
        } else if s.args[0] == SCRYPT_TAG {
            if stanzas.len() != 1 {
                return Err(malformed(
                    s.line,
                    "an scrypt (passphrase) stanza must be the only stanza in the header",
                ));
            }
            scrypt_work_factor = Some(check_scrypt(s).map_err(|why| malformed(s.line, why))?);
        }
    }
    Ok(Checked { scrypt_work_factor })
}

/// The arguments of a stanza line: `-> ` and visible ASCII arguments
/// separated by single spaces.
fn stanza_args(line: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let rest = line
        .strip_prefix(b"-> ")
        .ok_or("a line that is neither a recipient stanza (\"-> \") nor the MAC line (\"--- \")")?;
    let args: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    for arg in &args {
        if arg.is_empty() {
            return Err("a stanza line has an empty argument (a stray space)");
        }
        if !arg.iter().all(|b| (33..=126).contains(b)) {
            return Err("a stanza argument holds a character that is not visible ASCII");
        }
    }
    Ok(args)
}

/// `--- ` and the canonical base64 of a 32-byte MAC.
fn check_mac_line(line: &[u8]) -> std::result::Result<(), &'static str> {
    let mac = line
        .strip_prefix(b"--- ")
        .ok_or("the MAC line is not \"--- \" and the MAC")?;
    match canonical_base64(mac) {
        Some(bytes) if bytes.len() == 32 && mac.len() == 43 => Ok(()),
        _ => Err("the MAC line's MAC is not the canonical base64 of 32 bytes"),
    }
}

fn check_x25519(s: &StanzaShape<'_>) -> std::result::Result<(), &'static str> {
    if s.args.len() != 2 {
        return Err("an X25519 stanza must have exactly one argument after its type");
    }
    if canonical_base64(s.args[1]).is_none_or(|share| share.len() != 32) {
        return Err("an X25519 stanza's share is not the canonical base64 of 32 bytes");
    }
    if s.body_len != 32 {
        return Err("an X25519 stanza's body is not 32 bytes");
    }
    Ok(())
}

/// The work factor of a well-formed scrypt stanza.
fn check_scrypt(s: &StanzaShape<'_>) -> std::result::Result<u64, &'static str> {
    if s.args.len() != 3 {
        return Err("an scrypt stanza must have exactly two arguments after its type");
    }
    if canonical_base64(s.args[1]).is_none_or(|salt| salt.len() != 16) {
        return Err("an scrypt stanza's salt is not the canonical base64 of 16 bytes");
    }
    let factor = s.args[2];
    if factor.first().is_none_or(|&b| b == b'0') || !factor.iter().all(u8::is_ascii_digit) {
        return Err("an scrypt stanza's work factor is not a decimal number without leading zeros");
    }
    if s.body_len != 32 {
        return Err("an scrypt stanza's body is not 32 bytes");
    }
    // Digits only: it parses unless it is too large for u64, which is
    // far above any limit anyway.
    Ok(std::str::from_utf8(factor)
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(u64::MAX))
}
