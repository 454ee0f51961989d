//! Printing: human text or JSON, and errors with a hint where one helps.

use std::io::Write;

use serde::Serialize;

use tresor::Error;

/// Prints `value` as one line of JSON on stdout.
pub fn json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`tresor ls --json | head`) is not an error worth a panic.
    let _ = serde_json::to_writer(&mut out, value);
    let _ = writeln!(out);
}

/// Prints a line on stdout, ignoring a closed pipe.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Writes raw bytes (a value, an envelope) to stdout, with a newline if
/// asked. A closed pipe is not an error; any other write failure is.
pub fn write_stdout(bytes: &[u8], newline: bool) -> tresor::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(bytes)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
            store: "output".into(),
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Prints an error on stderr, with a hint where the user can act.
pub fn error(e: &Error, as_json: bool) {
    if as_json {
        let body = serde_json::json!({
            "error": { "kind": e.kind(), "message": e.to_string(), "exit_code": e.exit_code() as u8 }
        });
        eprintln!("{body}");
        return;
    }
    eprintln!("tresor: error: {e}");
    let hint = match e {
        Error::Auth { .. } => {
            Some("check the password or key; any key slot unlocks (tresor keyslot list)")
        }
        Error::Integrity { .. } => Some(
            "the vault may be tampered with or damaged; run `tresor verify` and restore from a backup",
        ),
        Error::Conflict { .. } => {
            Some("another writer changed the secret; read it again and retry")
        }
        _ => None,
    };
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

/// Prints an error of `encrypt`/`decrypt` on stderr, with file hints
/// instead of the vault's.
pub fn file_error(e: &Error, as_json: bool) {
    if as_json {
        return error(e, as_json);
    }
    eprintln!("tresor: error: {e}");
    let hint = match e {
        Error::Auth { .. } => Some("check the identity file (-i) or passphrase"),
        Error::Integrity { .. } => Some(
            "the age file was modified, truncated or damaged; an -o OUT file is never written \
                 from it, but discard anything already sent to stdout",
        ),
        _ => None,
    };
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

/// A UTC timestamp, RFC 3339, from milliseconds since the epoch.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
