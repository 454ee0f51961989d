use super::*;

const VALUE: &str = "s3cr3t-value/with+chars&more";

fn scanner() -> Scanner {
    Scanner::new(vec![
        (
            SecretName::new("app/token").unwrap(),
            SecretValue::copy_from(VALUE.as_bytes()),
        ),
        (
            SecretName::new("app/short").unwrap(),
            SecretValue::copy_from(b"1234"),
        ),
    ])
}

fn scan(text: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    scanner().scan_bytes("f", text, 1, &mut out);
    out
}

#[test]
fn every_encoded_form_is_found_by_name_never_by_value() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let hex: String = VALUE.bytes().map(|b| format!("{b:02x}")).collect();
    let forms = [
        ("raw", VALUE.to_string()),
        ("base64", STANDARD.encode(VALUE)),
        ("base64url", URL_SAFE_NO_PAD.encode(VALUE)),
        ("hex", hex.clone()),
        ("hex", hex.to_uppercase()),
        ("url", "s3cr3t-value%2Fwith%2Bchars%26more".to_string()),
        ("json", "s3cr3t-value\\/with+chars&more".replace("\\/", "/")),
    ];
    for (encoding, form) in forms.clone() {
        let text = format!("line one\n  key = \"{form}\"\n");
        let found = scan(text.as_bytes());
        assert_eq!(found.len(), 1, "{encoding}: {found:?}");
        let f = &found[0];
        assert_eq!(
            (f.line, f.column, f.what.as_str()),
            (2, 10, "app/token"),
            "{encoding}"
        );
        // A form equal to an earlier one (json = raw here, base64url =
        // base64 when neither + nor / occurs) is named as the earlier.
        let first = forms
            .iter()
            .find(|(_, f)| f.trim_end_matches('=') == form.trim_end_matches('='))
            .unwrap()
            .0;
        assert_eq!(f.encoding, first, "{encoding}");
        assert!(!format!("{f:?}").contains(VALUE));
    }
    let quoted = Scanner::new(vec![(
        SecretName::new("a/q").unwrap(),
        SecretValue::copy_from(b"say \"hi\"\n and go"),
    )]);
    let mut out = Vec::new();
    quoted.scan_bytes("f", br#"{"v": "say \"hi\"\n and go"}"#, 1, &mut out);
    assert_eq!(out[0].encoding, "json");
}

#[test]
fn short_values_are_not_searched_and_counted() {
    let s = scanner();
    assert_eq!((s.secrets, s.too_short), (1, 1));
    assert!(scan(b"1234 1234").is_empty());
}

#[test]
fn token_shapes_are_found_with_their_kind() {
    let text = b"a\nkey: AKIAIOSFODNN7EXAMPLE\n-----BEGIN RSA PRIVATE KEY-----\n\
        x = 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789'\n\
        gh = ghp_abcdefghijklmnopqrstuvwxyz0123456789 \xc3\xa9\n";
    let found = scan(text);
    let got: Vec<(u64, u64, &str)> = found
        .iter()
        .map(|f| (f.line, f.column, f.what.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 6, "aws-access-key-id"),
            (3, 1, "private-key"),
            (4, 6, "anthropic"),
            (5, 6, "github")
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.kind == "token" && f.encoding == "shape")
    );
    // A commit id is not a W&B key, a word is not a token.
    assert!(scan(b"commit 0123456789abcdef0123456789abcdef01234567 sk-learn AKIA").is_empty());
}

#[test]
fn columns_count_characters() {
    let found = scan(format!("é€ {VALUE}").as_bytes());
    assert_eq!((found[0].line, found[0].column), (1, 4));
}

#[test]
fn folders_skip_binary_huge_ignored_and_dot_git() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("clean.txt"), "nothing here\n").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/leak.py"), format!("x = 1\nTOKEN = '{VALUE}'\n")).unwrap();
    std::fs::write(d.join("bin.dat"), [VALUE.as_bytes(), b"\0\0"].concat()).unwrap();
    std::fs::write(d.join("big.log"), format!("{VALUE}\n{}", "a".repeat(2048))).unwrap();
    std::fs::write(d.join(".gitignore"), "ignored/\n").unwrap();
    std::fs::create_dir(d.join("ignored")).unwrap();
    std::fs::write(d.join("ignored/x.txt"), VALUE).unwrap();
    std::fs::create_dir(d.join(".git")).unwrap();
    std::fs::write(d.join(".git/config"), VALUE).unwrap();
    std::fs::write(d.join(".env"), format!("T={VALUE}\n")).unwrap();
    let options = Options {
        max_file_size: 1024,
        ..Options::default()
    };
    let report = scanner().scan_paths(&[d.to_path_buf()], &options).unwrap();
    let paths: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            let p = Path::new(&f.path);
            format!(
                "{}:{}:{}",
                p.strip_prefix(d).unwrap().display(),
                f.line,
                f.column
            )
        })
        .collect();
    assert_eq!(paths, [".env:1:3", "sub/leak.py:2:10"]);
    assert_eq!((report.skipped_binary, report.skipped_large), (1, 1));
    // clean.txt, sub/leak.py, .gitignore, .env
    assert_eq!(report.files, 4);
    // Without ignore files, the ignored folder is searched too.
    let all = Options {
        ignore_files: false,
        ..options
    };
    let report = scanner().scan_paths(&[d.to_path_buf()], &all).unwrap();
    assert_eq!(report.findings.len(), 3);
    assert!(scanner().scan_paths(&[d.join("missing")], &all).is_err());
}
