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
