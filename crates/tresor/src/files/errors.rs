//! How age's and the payload's failures map to tresor errors: a wrong key
//! is [`Error::Auth`], damage is [`Error::Integrity`].

use super::*;

/// Maps age's header and key errors: wrong key or passphrase → Auth,
/// damaged or tampered header → Integrity.
pub(super) fn decrypt_error(e: age::DecryptError, what: &str) -> Error {
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
        // Checked before age is asked ([`work_factor_refused`]); age's own
        // limit is set to the same number.
        D::ExcessiveWork { required, .. } => Error::Validation(format!(
            "{what}: {WORK_FACTOR_REFUSED} 2^{required}; refused"
        )),
        D::Io(e) => payload_error(e, what),
        other => Error::Integrity {
            store,
            detail: other.to_string(),
        },
    }
}

/// The words [`work_factor_refused`] starts its message with (after the
/// file's name), followed by `2^N`.
const WORK_FACTOR_REFUSED: &str = "the passphrase file asks for an scrypt work factor of";

/// A passphrase file whose scrypt work factor (log2 N) is above the limit:
/// refused before any memory is allocated.
pub(super) fn work_factor_refused(what: &str, factor: u64, max: u8) -> Error {
    if factor >= 64 {
        // scrypt's N = 2^factor must fit in 64 bits: no limit allows it.
        return Error::Validation(format!(
            "{what}: the scrypt work factor the passphrase file asks for is 2^64 or more, \
             which no machine can compute; refused"
        ));
    }
    Error::Validation(format!(
        "{what}: {WORK_FACTOR_REFUSED} 2^{factor}, above the limit of 2^{max}: refused before \
         any work is done (2^{factor} needs {} of memory and as much time; 2^{max} is the \
         most stock age reads)",
        scrypt_memory(factor)
    ))
}

/// The memory scrypt with r = 8 needs for work factor 2^`factor` (below
/// 64): 1 KiB × N.
fn scrypt_memory(factor: u64) -> String {
    let exponent = factor + 10;
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if exponent >= 70 {
        return format!("2^{factor} KiB");
    }
    let unit = (exponent / 10) as usize;
    format!("{} {}", 1u64 << (exponent - unit as u64 * 10), units[unit])
}

/// The work factor named in an error of [`work_factor_refused`] (or age's
/// own refusal), for a front end to say how to raise the limit (the
/// `tresor decrypt --max-work-factor N` hint); `None` for any other error.
pub fn refused_work_factor(e: &Error) -> Option<u64> {
    let Error::Validation(text) = e else {
        return None;
    };
    let (_, rest) = text.split_once(WORK_FACTOR_REFUSED)?;
    let digits: String = rest
        .trim_start()
        .strip_prefix("2^")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Maps a payload failure.
pub(super) fn stream_error(e: stream::StreamError, what: &str) -> Error {
    use stream::StreamError as S;
    let store = what.to_string();
    match e {
        S::Read(source) => io_error("input", Path::new(what), source),
        S::Write(source) => crate::fs::write_error("output", source),
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
pub(super) fn payload_error(e: io::Error, what: &str) -> Error {
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

pub(super) fn io_error(store: &str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        store: store.into(),
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(24).collect();
    if text.chars().count() > 24 {
        s.push('…');
    }
    s
}
