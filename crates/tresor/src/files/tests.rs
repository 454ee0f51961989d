//! Unit tests of the age file encryption (round trips, header bounds,
//! damaged files).

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
    0x1c, 0x1d, 0x09, 0x76, 0x28, 0xd2, 0x4b, 0x70, 0xdf, 0x8e, 0x9c, 0xe2, 0xf7, 0x80, 0xe5, 0x8f,
    0x53, 0x6a, 0xc1, 0x75, 0xc9, 0x37, 0x72, 0x2b, 0xf4, 0x13, 0x7f, 0x33, 0xc2, 0xd3, 0x66, 0xea,
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

/// A header of `stanzas` with a MAC line (any MAC: only the shape is
/// checked here).
fn shaped(stanzas: &str) -> Vec<u8> {
    format!("age-encryption.org/v1\n{stanzas}--- {}\n", "A".repeat(43)).into_bytes()
}

#[test]
fn the_strict_header_check_follows_the_specification() {
    let share = "A".repeat(43);
    let body = format!("{}A", "B".repeat(42));
    let x = format!("-> X25519 {share}\n{body}\n");
    let salt = format!("{}A", "C".repeat(21));
    let s = format!("-> scrypt {salt} 18\n{body}\n");
    let full = "D".repeat(64);
    let ok = |stanzas: &str| check_header(&shaped(stanzas));
    // Accepted: the shapes age writes, unknown stanzas of any body length.
    assert_eq!(
        ok(&x),
        Ok(Checked {
            scrypt_work_factor: None
        })
    );
    assert_eq!(
        ok(&s),
        Ok(Checked {
            scrypt_work_factor: Some(18)
        })
    );
    assert!(ok(&format!("-> t a b\n\n{x}")).is_ok());
    assert!(ok(&format!("-> t\n{full}\n\n{x}")).is_ok());
    assert!(ok(&format!("-> t\n{full}\nWg\n{x}")).is_ok());
    assert!(ok(&format!("{x}-> x25519 lower case is another type\n\n")).is_ok());
    // Refused, with the line and the rule.
    let cases: Vec<(String, usize, &str)> = vec![
        (String::new(), 2, "no recipient stanza"),
        (format!("-> t\n{x}"), 2, "no body line"),
        (format!("{x}-> t\n"), 4, "no body line"),
        (
            format!("-> t\n{full}\n{x}"),
            4,
            "without a line shorter than 64",
        ),
        (
            format!("-> t\n{full}\n"),
            4,
            "without a line shorter than 64",
        ),
        (format!("-> t\n{full}A\n\n{x}"), 3, "longer than 64 columns"),
        (format!("-> t\nWg==\n{x}"), 3, "not canonical"),
        (format!("-> t\nWh\n{x}"), 3, "not canonical"),
        (format!("-> t\nWhBcD\n{x}"), 3, "not canonical"),
        (format!("-> t\nWg \n{x}"), 3, "not canonical"),
        (format!("-> t\nWg\r\n{x}"), 3, "not canonical"),
        (format!("-> t\nWg\n\n{x}"), 4, "neither a recipient stanza"),
        (format!("->t\n\n{x}"), 2, "neither a recipient stanza"),
        (format!("->  t\n\n{x}"), 2, "empty argument"),
        (format!("-> t \n\n{x}"), 2, "empty argument"),
        (format!("-> \n\n{x}"), 2, "empty argument"),
        (format!("-> t\tu\n\n{x}"), 2, "not visible ASCII"),
        (format!("-> t\u{e9}\n\n{x}"), 2, "not visible ASCII"),
        (format!("-> X25519\n{body}\n"), 2, "exactly one argument"),
        (
            format!("-> X25519 {share} x\n{body}\n"),
            2,
            "exactly one argument",
        ),
        (format!("-> X25519 {share}=\n{body}\n"), 2, "share is not"),
        (
            format!("-> X25519 {}B\n{body}\n", &share[..42]),
            2,
            "share is not",
        ),
        (
            format!("-> X25519 {}\n{body}\n", "A".repeat(42)),
            2,
            "share is not",
        ),
        (
            format!("-> X25519 {share}\n{}\n", "A".repeat(42)),
            2,
            "body is not 32",
        ),
        // Wherever the malformed stanza is, before or after a good one.
        (format!("{x}-> X25519 {share}\n\n"), 4, "body is not 32"),
        (format!("{x}{s}"), 4, "only stanza"),
        (format!("{s}{x}"), 2, "only stanza"),
        (format!("{s}{s}"), 2, "only stanza"),
        (
            format!("-> scrypt {salt}\n{body}\n"),
            2,
            "exactly two arguments",
        ),
        (
            format!("-> scrypt {salt} 18 x\n{body}\n"),
            2,
            "exactly two arguments",
        ),
        (
            format!("-> scrypt {} 18\n{body}\n", "C".repeat(21)),
            2,
            "salt is not",
        ),
        (format!("-> scrypt {salt}== 18\n{body}\n"), 2, "salt is not"),
        (
            format!("-> scrypt {salt} 018\n{body}\n"),
            2,
            "leading zeros",
        ),
        (format!("-> scrypt {salt} 0\n{body}\n"), 2, "leading zeros"),
        (
            format!("-> scrypt {salt} +18\n{body}\n"),
            2,
            "leading zeros",
        ),
        (format!("-> scrypt {salt} 18\n\n"), 2, "body is not 32"),
    ];
    for (stanzas, line, why) in cases {
        let m = ok(&stanzas).expect_err(&stanzas);
        assert!(m.why.contains(why), "{stanzas:?}: {m:?}");
        assert_eq!(m.line, line, "{stanzas:?}: {m:?}");
    }
    // The MAC line.
    for mac in [
        "---".to_string(),
        format!("---  {}", "A".repeat(43)),
        format!("--- {} ", "A".repeat(43)),
        format!("--- {}=", "A".repeat(43)),
        format!("--- {}", "A".repeat(42)),
        format!("--- {}", "A".repeat(44)),
        format!("--- {}B", "A".repeat(42)),
        format!("---- {}", "A".repeat(43)),
    ] {
        let header = format!("age-encryption.org/v1\n{x}{mac}\n");
        let m = check_header(header.as_bytes()).expect_err(&mac);
        assert_eq!(m.line, 4, "{mac:?}: {m:?}");
        assert!(m.why.contains("MAC line"), "{mac:?}: {m:?}");
    }
    let e = Malformed { line: 3, why: "x" }.error("f.age");
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert!(e.to_string().contains("f.age"), "{e}");
}

#[test]
fn the_strict_check_runs_before_age_and_before_any_output() {
    // age's own parser reads a stanza with no body line (its "legacy"
    // form); tresor refuses it before trying the key, and writes nothing.
    let identity = age::x25519::Identity::generate();
    let to = EncryptTo::Recipients(vec![Box::new(identity.to_public())]);
    let mut sealed = Vec::new();
    encrypt(&to, &b"secret"[..], &mut sealed, "t").unwrap();
    let with = DecryptWith::Identities(vec![Box::new(identity)]);
    let at = sealed.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let mut bad = sealed[..at].to_vec();
    bad.extend(b"-> grease\n");
    bad.extend(&sealed[at..]);
    let mut out = Vec::new();
    let e = decrypt(&with, &bad[..], &mut out, "bad.age").unwrap_err();
    assert!(e.to_string().contains("no body line"), "{e}");
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert!(out.is_empty());
}

#[test]
fn a_passphrase_work_factor_over_the_limit_is_refused_before_scrypt_runs() {
    // A stanza claiming 2^40 (a TiB of memory): refused at once by the
    // default limit, and by a lower one for 2^19.
    let body = format!("{}A", "B".repeat(42));
    let mut file = shaped(&format!("-> scrypt {}A 40\n{body}\n", "C".repeat(21)));
    file.extend([0u8; NONCE_LEN + 16]);
    let with = DecryptWith::Passphrase(SecretString::from("pw".to_string()));
    let e = decrypt(&with, &file[..], Vec::new(), "big.age").unwrap_err();
    assert!(matches!(e, Error::Validation(_)), "{e}");
    assert_eq!(refused_work_factor(&e), Some(40), "{e}");
    assert!(e.to_string().contains("1 PiB"), "{e}");
    let options = DecryptOptions {
        max_work_factor: 18,
    };
    let mut file = shaped(&format!("-> scrypt {}A 19\n{body}\n", "C".repeat(21)));
    file.extend([0u8; NONCE_LEN + 16]);
    let e = decrypt_with_options(&with, &options, &file[..], Vec::new(), "f").unwrap_err();
    assert_eq!(refused_work_factor(&e), Some(19), "{e}");
    assert!(e.to_string().contains("above the limit of 2^18"), "{e}");
    // 2^64 and beyond: no limit allows it, and no hint offers one.
    let mut file = shaped(&format!("-> scrypt {}A 64\n{body}\n", "C".repeat(21)));
    file.extend([0u8; NONCE_LEN + 16]);
    let e = decrypt(&with, &file[..], Vec::new(), "f").unwrap_err();
    assert!(e.to_string().contains("2^64 or more"), "{e}");
    assert_eq!(refused_work_factor(&e), None);
    assert_eq!(refused_work_factor(&Error::Validation("x".into())), None);
    assert_eq!(DecryptOptions::default().max_work_factor, 22);
}

/// The fuzz target's payload entry points (`fuzzing`): a sealed payload
/// opens to its plaintext with any number of workers, and one cut short by
/// a byte, or at a chunk boundary, does not.
#[test]
fn fuzzing_payload_entry_points_round_trip_and_refuse_a_cut() {
    let key = [9u8; 32];
    for len in [0, 1, stream::CHUNK, stream::CHUNK + 1, 2 * stream::CHUNK] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = fuzzing::seal_payload(&key, &plain, 2);
        for workers in [1, 3] {
            assert_eq!(
                fuzzing::open_payload(&key, &sealed, workers),
                Ok(plain.clone())
            );
        }
        assert!(fuzzing::open_payload(&key, &sealed[..sealed.len() - 1], 2).is_err());
        if len > stream::CHUNK {
            assert!(fuzzing::open_payload(&key, &sealed[..stream::SEALED], 1).is_err());
        }
    }
}
