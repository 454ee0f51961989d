use super::*;

#[test]
fn names_map_to_ones_tresor_accepts() {
    assert_eq!(map_name("my key!").unwrap().as_str(), "my_key_");
    assert_eq!(map_name("/a//b/").unwrap().as_str(), "a/b");
    assert_eq!(map_name("a/../b").unwrap().as_str(), "a/_/b");
    assert_eq!(map_name("naïve").unwrap().as_str(), "na_ve");
    assert!(map_name("///").is_none());
    assert_eq!(map_name(&"x".repeat(300)).unwrap().as_str().len(), 256);
}

#[test]
fn prefixes_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.env");
    std::fs::write(&f, "A=1\nB=2\n").unwrap();
    let options = ReadOptions {
        prefix: Some("team/".into()),
        ..ReadOptions::default()
    };
    let plan = read(Format::Dotenv, &f, &options).unwrap();
    let names: Vec<&str> = plan.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["team/A", "team/B"]);
    assert_eq!(plan.counts(), vec![("team".to_string(), 2)]);
}

#[test]
fn env_map_takes_a_given_environment() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("map");
    std::fs::write(&f, "svc/token = TOKEN\n").unwrap();
    let options = ReadOptions {
        environment: Some(
            [("TOKEN".to_string(), Zeroizing::new("t-1".to_string()))]
                .into_iter()
                .collect(),
        ),
        ..ReadOptions::default()
    };
    let plan = read(Format::EnvMap, &f, &options).unwrap();
    assert_eq!(plan.entries[0].value.expose_secret(), b"t-1");
    assert_eq!(plan.entries[0].origin, "line 1 (TOKEN)");
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(Format::parse(f.as_str()), Some(f));
    }
    assert_eq!(Format::parse("xml"), None);
}

/// The flat JSON reader reads straight into entries; it gives what a JSON
/// tree read gives: names in order, the last of a repeated name, strings
/// (escapes decoded), numbers and booleans as their JSON text, and the
/// same message for a value or a file that is not what it must be.
#[test]
fn flat_json_reads_as_a_json_tree_would() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.json");
    let good = [
        r#"{"b": "2", "a": "1", "c/d": "x\"y\\z\u00e9\n"}"#,
        r#"{"n": 42, "neg": -7, "f": 1.5, "e": 1e3, "big": 18446744073709551616, "t": true, "no": false}"#,
        r#"{"dup": "first", "other": "o", "dup": "second"}"#,
        r#"  {}  "#,
    ];
    for text in good {
        std::fs::write(&f, text).unwrap();
        let plan = read(Format::Json, &f, &ReadOptions::default()).unwrap();
        let got: Vec<(String, Vec<u8>)> = plan
            .entries
            .iter()
            .map(|e| (e.name.to_string(), e.value.expose_secret().to_vec()))
            .collect();
        let serde_json::Value::Object(tree) = serde_json::from_str(text).unwrap() else {
            panic!("{text}")
        };
        let want: Vec<(String, Vec<u8>)> = tree
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text.into_bytes())
            })
            .collect();
        assert_eq!(got, want, "{text}");
        let origins: Vec<&str> = plan.entries.iter().map(|e| e.origin.as_str()).collect();
        let want_origins: Vec<String> = tree.keys().map(|k| format!("key '{k}'")).collect();
        assert_eq!(origins, want_origins, "{text}");
    }
    let bad = [
        (
            r#"{"a": "1", "z": [1, 2], "b": {"c": 1}}"#,
            "key 'b': the value is an object, not a string",
        ),
        (r#"{"a": null}"#, "key 'a': the value is null, not a string"),
        (
            r#"{"a": [[{"x": 1}]]}"#,
            "key 'a': the value is an array, not a string",
        ),
        (
            r#"["a", "b"]"#,
            "the file holds an array, not an object of names to values",
        ),
        (
            r#""s3cret""#,
            "the file holds a string, not an object of names to values",
        ),
        (
            r#"7"#,
            "the file holds a number, not an object of names to values",
        ),
        (r#"{"a": "1"} {"b": "2"}"#, "invalid JSON"),
        (r#"{"a": "s3cret"#, "the JSON ends early"),
    ];
    for (text, message) in bad {
        std::fs::write(&f, text).unwrap();
        // Where a tree read would say the JSON broke.
        let message = match serde_json::from_str::<serde_json::Value>(text) {
            Err(e) => format!("line {} column {}: {message}", e.line(), e.column()),
            Ok(_) => message.to_string(),
        };
        let e = read(Format::Json, &f, &ReadOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{text} was read"))
            .to_string();
        assert!(e.contains(&message), "{text}: {e}");
        assert!(!e.contains("s3cret"), "{text}: {e}");
    }
}
