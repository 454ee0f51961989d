//! Printing: human text or JSON, and errors with a hint where one helps.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use zeroize::Zeroizing;

use tresor::Error;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences [`note`] (`--quiet`, `--json`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A note on stderr for the user, from code without a command context;
/// silent with `--quiet` or `--json`.
pub fn note(text: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("tresor: {text}");
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`tresor ls --json | head`) is not an error worth a panic.
    let _ = serde_json::to_writer(&mut out, value);
    let _ = writeln!(out);
}

/// A growing buffer for output that holds a secret: it never reallocates
/// in place (growing copies into a new buffer and wipes the old one), and
/// it is wiped when dropped.
pub struct SecretBuf(Zeroizing<Vec<u8>>);

impl SecretBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Write for SecretBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let need = self.0.len() + data.len();
        if need > self.0.capacity() {
            let mut bigger =
                Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2).max(256)));
            bigger.extend_from_slice(&self.0);
            // The old buffer is wiped as it is dropped.
            self.0 = bigger;
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as one line of JSON in a [`SecretBuf`] (newline included):
/// serde_json writes the borrowed strings straight into it, so a secret in
/// `value` is copied only into wiped memory.
pub fn secret_json_line<T: Serialize>(value: &T) -> tresor::Result<SecretBuf> {
    let mut buf = SecretBuf::with_capacity(512);
    serde_json::to_writer(&mut buf, value)
        .and_then(|()| buf.write_all(b"\n").map_err(serde_json::Error::io))
        .map_err(|e| Error::Validation(format!("JSON output: {e}")))?;
    Ok(buf)
}

/// Prints `value`, which holds a secret, as one line of JSON on stdout
/// without leaving a copy in memory that is not wiped: serialised into a
/// [`SecretBuf`] and written with [`write_secret_line`].
pub fn secret_json<T: Serialize>(value: &T) -> tresor::Result<()> {
    write_secret_line(secret_json_line(value)?.as_bytes())
}

/// Writes `line` (ending in a newline) to stdout past stdout's own buffer:
/// that buffer is flushed first, and a write that ends in a newline then
/// goes straight to the descriptor, so the line's bytes are not copied into
/// a buffer that keeps them after the write.
pub fn write_secret_line(line: &[u8]) -> tresor::Result<()> {
    debug_assert!(line.ends_with(b"\n"));
    let mut out = std::io::stdout().lock();
    let result = out
        .flush()
        .and_then(|()| out.write_all(line))
        .and_then(|()| out.flush());
    stdout_result(result)
}

/// A JSON object: `body`'s fields and then `field` holding `secret`
/// (`null` when `None`), serialised from borrowed data for
/// [`secret_json`].
pub struct WithSecret<'a> {
    /// The fields without secrets (a JSON object).
    pub body: serde_json::Value,
    /// The secret field's name.
    pub field: &'a str,
    /// The secret, borrowed from wiped memory.
    pub secret: Option<&'a str>,
}

impl Serialize for WithSecret<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let fields = self.body.as_object();
        let mut map = s.serialize_map(Some(fields.map_or(0, |f| f.len()) + 1))?;
        for (k, v) in fields.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(self.field, &self.secret)?;
        map.end()
    }
}

/// `bytes` as standard base64 in wiped memory (sized exactly, never grown).
pub fn base64_secret(bytes: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let len = base64::encoded_len(bytes.len(), true).expect("a value's base64 length fits");
    let mut buf = Zeroizing::new(vec![0u8; len]);
    base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut buf[..])
        .expect("the buffer is sized for the encoding");
    // Moved, not copied, into the String.
    let bytes = std::mem::take(&mut *buf);
    Zeroizing::new(String::from_utf8(bytes).expect("base64 is ASCII"))
}

/// `text` and a newline, in wiped memory sized up front.
pub fn with_newline(text: &str) -> Zeroizing<String> {
    let mut line = Zeroizing::new(String::with_capacity(text.len() + 1));
    line.push_str(text);
    line.push('\n');
    line
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
    stdout_result(result)
}

/// Prints an error on stderr, with a hint where the user can act (the
/// hints and exit codes are the table in `exit.rs`).
pub fn error(e: &Error, as_json: bool) {
    report(e, as_json, crate::exit::Context::Secrets);
}

/// Prints an error of `encrypt`/`decrypt` on stderr, with file hints
/// instead of the vault's.
pub fn file_error(e: &Error, as_json: bool) {
    report(e, as_json, crate::exit::Context::Files);
}

/// Prints an error with the hints of `context`'s commands.
pub fn report(e: &Error, as_json: bool, context: crate::exit::Context) {
    let hint = crate::exit::hint(e, context);
    if as_json {
        let mut error = serde_json::json!({
            "kind": crate::exit::json_kind(e),
            "type": e.kind(),
            "message": e.to_string(),
            "exit_code": crate::exit::code(e) as u8,
        });
        if let Some(hint) = &hint {
            error["hint"] = serde_json::Value::String(hint.clone());
        }
        eprintln!("{}", serde_json::json!({ "error": error }));
        return;
    }
    eprintln!("tresor: error: {e}");
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

/// A write to stdout's outcome: a closed pipe is no error (the reader has
/// what it wanted); anything else is an I/O error on stdout.
fn stdout_result(result: std::io::Result<()>) -> tresor::Result<()> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
            store: "output".into(),
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{arm, assert_no_leak, serial};
    use std::hint::black_box;

    const MARKER: &[u8; 32] = b"tresor-cli-json-SECRET-MARKER-01";

    /// `MARKER` repeated to `len` bytes, in wiped memory of exactly that size.
    fn secret_text(len: usize) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(len));
        s.extend((0..len).map(|i| char::from(MARKER[i % MARKER.len()])));
        assert_eq!(s.capacity(), len);
        s
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The detector sees a secret left in freed memory by the way these
    /// outputs used to be made: a json! value and its String.
    #[test]
    fn positive_control_json_values_leave_copies() {
        let serial = serial();
        let secret = secret_text(64);
        let armed = arm(&serial, &[MARKER]);
        let body = serde_json::json!({"name": "a/b", "plaintext": secret.as_str()});
        let line = Zeroizing::new(body.to_string());
        drop(black_box(body));
        drop(line);
        assert!(armed.disarm() >= 1, "the detector missed a json! value");
        drop(secret);
    }

    /// A secret serialised with [`secret_json_line`], small or large
    /// enough to make the buffer grow several times, and through
    /// [`base64_secret`] and [`with_newline`], leaves no copy in freed
    /// memory.
    #[test]
    fn secret_json_leaves_no_copy() {
        let serial = serial();
        for len in [32, 600, 5000, 70_000] {
            let secret = secret_text(len);
            let armed = arm(&serial, &[MARKER]);
            let body = WithSecret {
                body: serde_json::json!({"name": "app/key", "version": 3}),
                field: "plaintext",
                secret: Some(secret.as_str()),
            };
            let line = secret_json_line(&body).unwrap();
            let bytes = line.as_bytes();
            assert!(bytes.starts_with(b"{\"name\":\"app/key\",\"version\":3,\"plaintext\":\""));
            assert!(bytes.ends_with(b"\"}\n"));
            assert!(contains(bytes, MARKER));
            drop(line);
            drop(body);
            drop(secret);
            assert_no_leak(armed.disarm(), &format!("secret_json_line ({len} bytes)"));
        }

        // Binary values go out as base64: the encoding is secret too.
        let raw = secret_text(96);
        let mut encoded_marker = [0u8; 44];
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode_slice(&MARKER[..], &mut encoded_marker)
            .unwrap();
        let armed = arm(&serial, &[MARKER, &encoded_marker[..40]]);
        let encoded = base64_secret(raw.as_bytes());
        assert!(contains(encoded.as_bytes(), &encoded_marker[..40]));
        let line = secret_json_line(&WithSecret {
            body: serde_json::json!({}),
            field: "plaintext_base64",
            secret: Some(encoded.as_str()),
        })
        .unwrap();
        drop(line);
        drop(encoded);
        let recovery = with_newline(&raw);
        assert!(recovery.ends_with('\n'));
        drop(recovery);
        drop(raw);
        assert_no_leak(armed.disarm(), "base64_secret / with_newline");

        // No secret: the field is null.
        let line = secret_json_line(&WithSecret {
            body: serde_json::json!({"path": "/v"}),
            field: "recovery_key",
            secret: None,
        })
        .unwrap();
        assert_eq!(
            line.as_bytes(),
            b"{\"path\":\"/v\",\"recovery_key\":null}\n"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
