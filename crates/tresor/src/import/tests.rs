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
