//! age v1 files as `tresor decrypt` reads them: the header (stanzas, MAC,
//! nonce) and the payload (STREAM chunks).
//!
//! First byte, mode:
//! - 0, 1: the whole file, decrypted with the fixture X25519 identity;
//! - 2: the whole file, decrypted with the passphrase `fuzz` (only when every
//!   scrypt stanza's work factor is at most 10, so one input cannot stall
//!   the run for seconds; the work-factor bound itself is tested elsewhere);
//! - 3: the payload alone, as a round trip: a plaintext of a chosen length
//!   is sealed, maybe altered (cut, a bit flipped, a byte added or 16
//!   removed), and opened with another number of workers. Unaltered, it
//!   must open to the same plaintext; altered, it must fail.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor::files::{self, DecryptWith, age};

#[path = "common.rs"]
mod common;

fn identity() -> age::x25519::Identity {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = TEXT.get_or_init(|| {
        String::from_utf8(common::fixture("age-identity.txt"))
            .expect("UTF-8")
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .expect("an identity line")
            .to_string()
    });
    text.parse().expect("the fixture identity parses")
}

/// Whether every `-> scrypt` stanza of the header names small work factors.
fn cheap_scrypt(file: &[u8]) -> bool {
    file.split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"-> scrypt"))
        .all(|l| {
            l.split(|&b| b == b' ').skip(3).all(|arg| {
                !arg.is_empty()
                    && arg.len() <= 2
                    && arg.iter().all(u8::is_ascii_digit)
                    && std::str::from_utf8(arg).unwrap().parse::<u8>().unwrap() <= 10
            })
        })
}

fn payload_round_trip(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let (head, body) = data.split_at(9);
    // Lengths cluster at the 64 KiB chunk boundaries (up to 4 chunks).
    let chunks = usize::from(head[0] % 5);
    let delta = i16::from_le_bytes([head[1], head[2]]);
    let len = if head[0] & 0x80 != 0 {
        (chunks * 65536).saturating_add_signed(isize::from(delta % 64))
    } else {
        (chunks * 65536).saturating_add_signed(isize::from(delta))
    };
    let plain: Vec<u8> = if body.is_empty() {
        vec![0; len]
    } else {
        body.iter().copied().cycle().take(len).collect()
    };
    let seal_workers = usize::from(head[3] % 3) + 1;
    let open_workers = usize::from((head[3] / 3) % 3) + 1;
    let key = [head[4]; 32];
    let sealed = files::fuzzing::seal_payload(&key, &plain, seal_workers);
    let at = u32::from_le_bytes([head[5], head[6], head[7], 0]) as usize;
    let mut altered = sealed.clone();
    match head[8] % 5 {
        0 => {}
        1 => altered.truncate(at % (sealed.len() + 1)),
        2 => {
            let i = at % sealed.len();
            altered[i] ^= 1 << (head[7] % 8);
        }
        3 => altered.insert(at % (sealed.len() + 1), head[7]),
        _ => {
            let i = at % sealed.len();
            altered.drain(i..(i + 16).min(sealed.len()));
        }
    }
    let opened = files::fuzzing::open_payload(&key, &altered, open_workers);
    if altered == sealed {
        assert_eq!(
            opened.as_deref(),
            Ok(&plain[..]),
            "an unaltered payload of {len} bytes did not open to its plaintext"
        );
    } else {
        assert!(
            opened.is_err(),
            "an altered payload opened (plaintext {len} bytes, alteration {})",
            head[8] % 5
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    match mode % 4 {
        0 | 1 => {
            let with = DecryptWith::Identities(vec![Box::new(identity())]);
            let result = files::decrypt(&with, file, &mut out, "fuzz");
            if result.is_err() {
                // A failed decryption may have written a verified prefix,
                // never more than the input holds.
                assert!(out.len() <= file.len());
            }
        }
        2 => {
            if cheap_scrypt(file) {
                let with = DecryptWith::Passphrase("fuzz".to_string().into());
                let _ = files::decrypt(&with, file, &mut out, "fuzz");
            }
        }
        _ => payload_round_trip(file),
    }
});
