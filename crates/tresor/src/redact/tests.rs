use proptest::prelude::*;

use super::*;

/// The reference: at each position the longest pattern that starts there
/// (the leftmost-longest rule), else the byte itself.
fn naive(r: &Redactor, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < data.len() {
        let mut best: Option<usize> = None;
        for (k, p) in r.sorted.iter().enumerate() {
            if data[i..].starts_with(p) && best.is_none_or(|b| r.sorted[b].len() < p.len()) {
                best = Some(k);
            }
        }
        if let Some(k) = best {
            out.extend_from_slice(&r.texts[r.replacement[k]]);
            i += r.sorted[k].len();
            continue 'outer;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

fn pieces(r: &Redactor, data: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = r.stream();
    let mut out = Vec::new();
    let mut from = 0;
    for &c in cuts {
        s.push(&data[from..c], &mut out);
        from = c;
    }
    s.push(&data[from..], &mut out);
    s.flush(&mut out);
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const VALUE: &[u8] = b"s3cr\"et/+?\xc3\xa9 \\x\n";

#[test]
fn each_encoding_is_replaced() {
    let r = Redactor::new([("TOKEN", VALUE)]).unwrap();
    let b64 = STANDARD.encode(VALUE);
    let b64u = URL_SAFE_NO_PAD.encode(VALUE);
    let hex_l: String = VALUE.iter().map(|b| format!("{b:02x}")).collect();
    let hex_u = hex_l.to_uppercase();
    let url: String = VALUE
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let json = serde_json::to_string(std::str::from_utf8(VALUE).unwrap()).unwrap();
    let json_inner = &json[1..json.len() - 1];
    let json_ascii = json_inner.replace('é', "\\u00e9");
    for form in [
        &b64[..],
        &b64u,
        &hex_l,
        &hex_u,
        &url,
        json_inner,
        &json_ascii,
    ] {
        let line = format!("<{form}>");
        assert_eq!(
            text(&r.redact(line.as_bytes())),
            "<[redacted:TOKEN]>",
            "{form}"
        );
    }
    let mut raw = b"<".to_vec();
    raw.extend_from_slice(VALUE);
    raw.push(b'>');
    assert_eq!(text(&r.redact(&raw)), "<[redacted:TOKEN]>");
    // Every form is among the patterns, and no pattern is plain text.
    assert!(r.patterns() >= 8, "{}", r.patterns());
}

#[test]
fn lower_case_url_encoding_is_replaced() {
    let r = Redactor::new([("K", &b"a/b?c=d"[..])]).unwrap();
    assert_eq!(text(&r.redact(b"x=a%2fb%3fc%3dd")), "x=[redacted:K]");
    assert_eq!(text(&r.redact(b"x=a%2Fb%3Fc%3Dd")), "x=[redacted:K]");
}

/// A value (and each encoded form) split at every byte boundary, and at
/// every pair of boundaries, still comes out redacted, and output before
/// it is never held back.
#[test]
fn values_split_at_every_boundary_are_replaced() {
    let r = Redactor::new([("TOKEN", VALUE), ("OTHER", &b"another-value"[..])]).unwrap();
    for form in forms(VALUE) {
        let mut data = b"line one\nbefore ".to_vec();
        data.extend_from_slice(&form);
        data.extend_from_slice(b" after\nanother-value\n");
        let whole = r.redact(&data);
        assert_eq!(
            text(&whole),
            "line one\nbefore [redacted:TOKEN] after\n[redacted:OTHER]\n",
            "{}",
            text(&form)
        );
        for a in 0..=data.len() {
            assert_eq!(pieces(&r, &data, &[a]), whole, "cut at {a}");
            for b in a..=data.len() {
                assert_eq!(
                    text(&pieces(&r, &data, &[a, b])),
                    text(&whole),
                    "cuts at {a}, {b} in {}",
                    text(&data)
                );
            }
        }
    }
}

#[test]
fn only_a_possible_start_is_held_back() {
    let r = Redactor::new([("K", &b"hunter22"[..])]).unwrap();
    let mut s = r.stream();
    let mut out = Vec::new();
    s.push(b"prompt> ", &mut out);
    assert_eq!(text(&out), "prompt> ");
    assert!(!s.holding());
    out.clear();
    s.push(b"ok\nhun", &mut out);
    assert_eq!(text(&out), "ok\n");
    assert!(s.holding());
    // Nothing more came: the tail was not the value after all.
    s.flush(&mut out);
    assert_eq!(text(&out), "ok\nhun");
    assert!(!s.holding());
}

#[test]
fn a_shorter_value_inside_a_held_tail_is_replaced_on_flush() {
    let r = Redactor::new([("LONG", &b"abcdefgh"[..]), ("SHORT", &b"bcde"[..])]).unwrap();
    let mut s = r.stream();
    let mut out = Vec::new();
    s.push(b"xabcde", &mut out);
    s.flush(&mut out);
    assert_eq!(text(&out), "xa[redacted:SHORT]");
    // And the longer one wins when it completes.
    assert_eq!(text(&r.redact(b"xabcdefgh")), "x[redacted:LONG]");
}

#[test]
fn short_values_are_skipped_and_named() {
    let r = Redactor::new([("FLAG", &b"on"[..]), ("KEY", &b"long-enough"[..])]).unwrap();
    assert_eq!(r.skipped(), ["FLAG".to_string()]);
    assert_eq!(text(&r.redact(b"on long-enough")), "on [redacted:KEY]");
}

#[test]
fn the_same_value_under_two_names_shows_the_first() {
    let r = Redactor::new([("A", &b"same-value"[..]), ("B", &b"same-value"[..])]).unwrap();
    assert_eq!(text(&r.redact(b"same-value")), "[redacted:A]");
}

#[test]
fn nothing_to_redact_passes_everything() {
    let r = Redactor::new(std::iter::empty::<(&str, &[u8])>()).unwrap();
    assert_eq!(r.redact(b"anything"), b"anything");
}

#[test]
fn many_values_use_the_contiguous_automaton() {
    let values: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (format!("V{i}"), format!("value-{i:04}-xyzzy").into_bytes()))
        .collect();
    let r = Redactor::new(values.iter().map(|(n, v)| (n, v.as_slice()))).unwrap();
    assert_eq!(r.matcher.kind(), AhoCorasickKind::ContiguousNFA);
    assert_eq!(text(&r.redact(b"[value-0999-xyzzy]")), "[[redacted:V999]]");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random values planted (raw or encoded) in random data, fed in random
    /// pieces: the output equals the reference, and no value survives.
    #[test]
    fn streaming_equals_the_reference(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 4..48), 1..4),
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..6),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let named: Vec<(String, Vec<u8>)> =
            values.iter().enumerate().map(|(i, v)| (format!("V{i}"), v.clone())).collect();
        let r = Redactor::new(named.iter().map(|(n, v)| (n, v.as_slice()))).unwrap();
        let mut data = Vec::new();
        for (i, n) in noise.iter().enumerate() {
            data.extend_from_slice(n);
            if let Some((v, f)) = picks.get(i) {
                let value: &Vec<u8> = v.get(&values);
                let all = forms(value);
                let form: &Zeroizing<Vec<u8>> = f.get(&all);
                data.extend_from_slice(form);
            }
        }
        let reference = naive(&r, &data);
        let mut cut: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        cut.sort_unstable();
        prop_assert_eq!(&r.redact(&data), &reference);
        prop_assert_eq!(&pieces(&r, &data, &cut), &reference);
        // A redacted value does not survive in the output.
        for p in &r.sorted {
            prop_assert!(!reference.windows(p.len()).any(|w| w == p.as_slice()));
        }
    }
}
