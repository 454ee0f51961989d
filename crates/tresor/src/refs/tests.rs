//! Unit tests of reference parsing and document rendering.

use super::*;
use crate::{CreateOptions, Credential, SecretValue, Vault};

fn tresor() -> (tempfile::TempDir, Tresor) {
    let dir = tempfile::tempdir().unwrap();
    let key = Credential::key_material(crate::new_key_file_text().as_bytes()).unwrap();
    let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())
        .unwrap()
        .vault;
    let mut t = Tresor::builder()
        .vault("local", vault, 50)
        .on_warning(|_| {})
        .build()
        .unwrap();
    for (name, value) in [
        ("db/password", "pa55 \"quoted\" $HOME `x`\nline2"),
        ("api.key", "k-1"),
        ("num", "0123"),
    ] {
        t.set(
            &SecretName::new(name).unwrap(),
            &SecretValue::copy_from(value.as_bytes()),
            &Default::default(),
        )
        .unwrap();
    }
    t.set(
        &SecretName::new("api.key").unwrap(),
        &SecretValue::copy_from(b"k-2"),
        &Default::default(),
    )
    .unwrap();
    (dir, t)
}

fn env(var: &str) -> Option<Zeroizing<String>> {
    (var == "REGION").then(|| Zeroizing::new("eu-west-1".to_string()))
}

#[test]
fn references_parse() {
    let secret = |store: Option<&str>, name: &str, selector| {
        Some(Reference::Secret {
            store: store.map(str::to_string),
            name: SecretName::new(name).unwrap(),
            selector,
        })
    };
    assert_eq!(
        Reference::parse("SEC/a/b").unwrap(),
        secret(None, "a/b", Selector::default())
    );
    assert_eq!(
        Reference::parse("SEC/ a/b ").unwrap(),
        secret(None, "a/b", Selector::default())
    );
    assert_eq!(
        Reference::parse("SEC/a#3").unwrap(),
        secret(None, "a", Selector::Version(3))
    );
    assert_eq!(
        Reference::parse("SEC/a@previous").unwrap(),
        secret(None, "a", Selector::Label(Label::Previous))
    );
    assert_eq!(
        Reference::parse("SEC/team:a/b@pending").unwrap(),
        secret(Some("team"), "a/b", Selector::Label(Label::Pending))
    );
    assert_eq!(
        Reference::parse("ENV/AWS_REGION").unwrap(),
        Some(Reference::Env("AWS_REGION".into()))
    );
    for plain in ["", "text", "prefix SEC/x", "sec/x", "\\SEC/x", "SECRET"] {
        assert_eq!(Reference::parse(plain).unwrap(), None, "{plain}");
    }
    assert_eq!(classify("\\SEC/x").unwrap(), Classified::Escaped("SEC/x"));
    assert_eq!(
        classify("\\\\ENV/x").unwrap(),
        Classified::Escaped("\\ENV/x")
    );
    assert_eq!(classify("\\other").unwrap(), Classified::Plain);
    for bad in [
        "SEC/",
        "SEC/a#0",
        "SEC/a#x",
        "SEC/a@latest",
        "SEC/../x",
        "SEC/b d:x",
        "SEC/a b",
        "ENV/",
        "ENV/A=B",
    ] {
        let e = Reference::parse(bad).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{bad}: {e}");
    }
    for r in ["SEC/a", "SEC/s:a#2", "SEC/a@pending", "ENV/X"] {
        assert_eq!(Reference::parse(r).unwrap().unwrap().to_string(), r);
    }
}

#[test]
fn versions_labels_and_stores_resolve() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let get = |r: &mut Resolver<'_>, s: &str| r.resolve_str(s).unwrap().unwrap().to_string();
    assert_eq!(get(&mut r, "SEC/api.key"), "k-2");
    assert_eq!(get(&mut r, "SEC/api.key#1"), "k-1");
    assert_eq!(get(&mut r, "SEC/api.key@previous"), "k-1");
    assert_eq!(get(&mut r, "SEC/local:api.key"), "k-2");
    assert_eq!(get(&mut r, "ENV/REGION"), "eu-west-1");
    let e = r.resolve_str("SEC/nowhere:api.key").unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
    let e = r.resolve_str("ENV/UNSET_VAR").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("ENV/UNSET_VAR"), "{e}");
}

const YAML: &str = "\
zeta: first
database:
  host: db.internal
  password: SEC/db/password
  port: 5432
api:
  key: \"SEC/api.key\"
  region: ENV/REGION
  literal: \\SEC/api.key
list:
  - SEC/num
  - plain
  - 7
alpha: last
";

#[test]
fn yaml_renders_in_key_order_with_types_kept() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let out = r.render(YAML, Format::Yaml, None).unwrap();
    let keys: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(keys, ["zeta", "database", "api", "list", "alpha"]);
    let back: serde_json::Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(
        back["database"]["password"],
        "pa55 \"quoted\" $HOME `x`\nline2"
    );
    assert_eq!(back["database"]["port"], 5432);
    assert_eq!(back["api"]["key"], "k-2");
    assert_eq!(back["api"]["region"], "eu-west-1");
    assert_eq!(back["api"]["literal"], "SEC/api.key");
    assert_eq!(
        back["list"][0], "0123",
        "a secret that looks like a number stays text"
    );
    assert_eq!(back["list"][2], 7);
}

#[test]
fn json_and_toml_render_round_trip() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let json = r#"{"z": 1, "db": {"password": "SEC/db/password", "list": ["SEC/num", "\\ENV/REGION"]}, "a": null}"#;
    let out = r.render(json, Format::Json, None).unwrap();
    assert!(out.find("\"z\"").unwrap() < out.find("\"a\"").unwrap());
    let back: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["db"]["password"], "pa55 \"quoted\" $HOME `x`\nline2");
    assert_eq!(back["db"]["list"][0], "0123");
    assert_eq!(back["db"]["list"][1], "ENV/REGION");

    let toml_text = "# settings\nz = 1\n[db]\npassword = \"SEC/db/password\" # from tresor\nhosts = [\"a\", \"SEC/num\"]\ninline = { k = \"SEC/api.key\" }\n[[servers]]\nregion = \"ENV/REGION\"\n";
    let out = r.render(toml_text, Format::Toml, None).unwrap();
    assert!(out.starts_with("# settings\nz = 1\n[db]\n"), "{}", &*out);
    assert!(out.contains("# from tresor"));
    let back: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(
        back["db"]["password"].as_str(),
        Some("pa55 \"quoted\" $HOME `x`\nline2")
    );
    assert_eq!(back["db"]["hosts"][1].as_str(), Some("0123"));
    assert_eq!(back["db"]["inline"]["k"].as_str(), Some("k-2"));
    assert_eq!(back["servers"][0]["region"].as_str(), Some("eu-west-1"));
}

#[test]
fn errors_name_file_key_path_and_reference_never_a_value() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let file = Path::new("conf/app.yaml");
    let text = "db:\n  password: SEC/db/password\n  hosts:\n    - ok\n    - SEC/db/missing\n";
    let e = r.render(text, Format::Yaml, Some(file)).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::NotFound { .. }), "{m}");
    for part in ["conf/app.yaml", "db.hosts[1]", "SEC/db/missing"] {
        assert!(m.contains(part), "{part} not in {m}");
    }
    assert!(!m.contains("pa55"), "{m}");
    let e = r
        .render(
            "a = \"SEC/x#zero\"\n",
            Format::Toml,
            Some(Path::new("c.toml")),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }));
    assert!(e.to_string().contains("c.toml, key a"), "{e}");
    let e = r
        .render("{\"a\": [\"ENV/NOPE\"]}", Format::Json, None)
        .unwrap_err();
    assert!(e.to_string().contains("key a[0]"), "{e}");
    assert!(r.render("a: [unclosed", Format::Yaml, None).is_err());
}

#[test]
fn load_yaml_fills_a_type() {
    #[derive(serde::Deserialize)]
    struct Db {
        password: String,
        port: u16,
    }
    #[derive(serde::Deserialize)]
    struct Conf {
        database: Db,
    }
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let c: Conf = r.load_yaml(YAML, None).unwrap();
    assert_eq!(c.database.password, "pa55 \"quoted\" $HOME `x`\nline2");
    assert_eq!(c.database.port, 5432);
    // A shape error never quotes a value.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        database: std::collections::BTreeMap<String, u16>,
    }
    let e = r.load_yaml::<Wrong>(YAML, None).unwrap_err();
    assert!(!e.to_string().contains("pa55"), "{e}");
}

#[test]
fn inject_replaces_placeholders_and_names_line_and_column() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    let template = "[client]\npassword={{SEC/db/password}}\nregion = {{ ENV/REGION }}\nkeep = {{ .Go }} {{ \\SEC/num }}\nunclosed {{ SEC/num";
    let out = r.inject(template, None).unwrap();
    assert_eq!(
        out.as_str(),
        "[client]\npassword=pa55 \"quoted\" $HOME `x`\nline2\nregion = eu-west-1\nkeep = {{ .Go }} {{ SEC/num }}\nunclosed {{ SEC/num"
    );
    let e = r
        .inject("a\nb = {{ SEC/db/missing }}\n", Some(Path::new("my.conf")))
        .unwrap_err();
    assert!(e.to_string().contains("my.conf:2:5"), "{e}");
    assert!(e.to_string().contains("SEC/db/missing"), "{e}");
    let e = r.inject("x {{ SEC/a#0 }}", None).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }));
    assert!(e.to_string().contains("line 1, column 3"), "{e}");
}

#[test]
fn hostile_documents_fail_cleanly() {
    let (_d, mut t) = tresor();
    let mut r = Resolver::new(&mut t).with_env(env);
    // An alias bomb: nine levels of ten aliases each.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(r.render(&bomb, Format::Yaml, None).is_err());
    // Nesting far deeper than any config.
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(r.render(&deep_json, Format::Json, None).is_err());
    let deep_yaml = format!("{}x{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(r.render(&deep_yaml, Format::Yaml, None).is_err());
    let deep_toml = format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(r.render(&deep_toml, Format::Toml, None).is_err());
}
