//! Unit tests of config parsing, discovery and file checks.

use super::*;

fn problems(text: &str) -> Vec<(usize, usize, String)> {
    Config::parse(text, None)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.line, p.column, p.message))
        .collect()
}

#[test]
fn the_design_sketch_parses() {
    let text = r#"
profile = "dev"

[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "team"
kind = "openbao"
address = "http://127.0.0.1:8200"
mount = "secret"
token = "ENV/BAO_TOKEN"
priority = 100
read_only = false
required = false
cache = true

[[stores]]
name = "env"
kind = "env"
prefix = "MODEL_FORGE_"
priority = 10

[profiles.dev]
stores = ["local", "env"]

[profiles.prod]
stores = ["team"]

[secrets]
OPENAI_API_KEY = { name = "openai/api_key", required = true, rule = "openai" }

[[rules]]
pattern = "huggingface/*"
prefix = "hf_"
"#;
    let c = Config::parse(text, None).unwrap();
    assert_eq!(c.stores.len(), 3);
    let team = c.store("team").unwrap();
    assert_eq!(team.kind, StoreKind::Openbao);
    assert!(team.cache && !team.required && !team.read_only);
    assert_eq!(team.options["token"], OptionValue::Env("BAO_TOKEN".into()));
    assert_eq!(team.options["mount"], OptionValue::Text("secret".into()));
    assert_eq!(c.profile.as_deref(), Some("dev"));
    let all: Vec<&str> = c
        .stores_for(None)
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(all, ["env", "local", "team"]);
    let dev: Vec<&str> = c
        .stores_for(Some("dev"))
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(dev, ["env", "local"]);
    assert!(c.stores_for(Some("nope")).is_err());
    assert_eq!(c.option_position("team", "token").unwrap().line, 14);
}

#[test]
fn every_problem_is_reported_with_its_line_and_column() {
    let text = r#"profile = "staging"
colour = "blue"

[[stores]]
name = "a"
kind = "floppy"

[[stores]]
name = "a"
kind = "env"
priority = -3

[[stores]]
kind = "vault"
read_only = "yes"

[[stores]]
name = "bad name!"
kind = "env"

[[stores]]
name = "c"
kind = "vault"
cache = true
token = "SEC/../x"
nested = { a = 1 }

[profiles.prod]
stores = ["a", "ghost"]
"#;
    let got = problems(text);
    let want: &[(usize, usize, &str)] = &[
        (
            1,
            11,
            "profile = \"staging\" names no [profiles.staging] table",
        ),
        (2, 1, "unknown top-level key 'colour'"),
        (6, 8, "unknown kind \"floppy\""),
        (9, 8, "duplicate store name 'a' (first defined at line 4)"),
        (11, 12, "priority must be a whole number"),
        (13, 1, "this store has no name"),
        (15, 13, "read_only must be true or false, not string"),
        (18, 8, "store name \"bad name!\" is not valid"),
        (24, 9, "cache = true is for remote stores"),
        (25, 9, "option 'token': \"SEC/../x\""),
        (
            26,
            10,
            "option 'nested' must be a string, number or boolean",
        ),
        (
            29,
            16,
            "profile 'prod' names store 'ghost', which is not defined",
        ),
    ];
    for (line, column, text) in want {
        assert!(
            got.iter()
                .any(|(l, c, m)| l == line && c == column && m.contains(text)),
            "missing {line}:{column} {text:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let got = problems("[[stores]]\nname = \"a\"\nkind = \n");
    assert_eq!(got[0].0, 3, "{got:?}");
    assert!(got[0].2.starts_with("TOML syntax"), "{got:?}");
    let got = problems("[[stores]]\nname = \"a\"\nname = \"b\"\nkind = \"env\"\n");
    assert_eq!(got[0].0, 3, "{got:?}");
}

#[test]
fn references_parse() {
    assert_eq!(
        OptionValue::parse("ENV/BAO_TOKEN").unwrap(),
        OptionValue::Env("BAO_TOKEN".into())
    );
    assert_eq!(
        OptionValue::parse("SEC/bao/token#2").unwrap(),
        OptionValue::Secret(SecretName::new("bao/token").unwrap(), Some(2))
    );
    assert!(OptionValue::parse("ENV/").is_err());
    assert!(OptionValue::parse("SEC/a#0").is_err());
    assert_eq!(
        OptionValue::parse("plain").unwrap(),
        OptionValue::Text("plain".into())
    );
}

#[test]
fn a_config_open_to_writers_is_refused_in_one_readable_sentence() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tresor.toml");
    std::fs::write(&path, "[[stores]]\nname = \"env\"\nkind = \"env\"\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = ConfigFile::read(&path).unwrap_err().to_string();
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(
        err.contains("decides which servers receive"),
        "the sentence is broken by a run of spaces: {err}"
    );
    assert!(!err.contains("  "), "{err}");
}

#[test]
fn declared_secrets_parse_with_defaults_and_profile_overrides() {
    let text = r#"
[[stores]]
name = "local"
kind = "vault"

[[stores]]
name = "env"
kind = "env"

[secrets]
OPENAI_API_KEY = { name = "openai/api_key", rule = "openai", description = "model calls" }
DATABASE_URL = "app/database_url"
SESSION_KEY = { name = "app/session", generate = { length = 48, charset = "base64url" } }
LOG_LEVEL = { name = "app/log_level", required = false, default = "info" }
TLS_KEY = { name = "app/tls", as_file = true }

[profiles.prod]
stores = ["local"]

[profiles.prod.secrets]
DATABASE_URL = { name = "prod/database_url" }
EXTRA = { name = "prod/extra", required = false }
"#;
    let c = Config::parse(text, None).unwrap();
    let top = c.declared(None).unwrap();
    let vars: Vec<&str> = top.iter().map(|d| d.var.as_str()).collect();
    assert_eq!(
        vars,
        [
            "OPENAI_API_KEY",
            "DATABASE_URL",
            "SESSION_KEY",
            "LOG_LEVEL",
            "TLS_KEY"
        ]
    );
    assert_eq!(top[0].rule.as_deref(), Some("openai"));
    assert!(top[0].required && !top[0].as_file);
    assert_eq!(top[1].name.as_str(), "app/database_url");
    let g = top[2].generate.unwrap();
    assert_eq!(
        (g.length, g.charset),
        (48, crate::generate::Charset::Base64url)
    );
    assert!(!top[3].required);
    assert_eq!(top[3].default.as_deref(), Some("info"));
    assert!(top[4].as_file);
    assert_eq!(top[1].at.line, 12);

    let prod = c.declared(Some("prod")).unwrap();
    let vars: Vec<&str> = prod.iter().map(|d| d.var.as_str()).collect();
    assert_eq!(
        vars,
        [
            "OPENAI_API_KEY",
            "DATABASE_URL",
            "SESSION_KEY",
            "LOG_LEVEL",
            "TLS_KEY",
            "EXTRA"
        ]
    );
    assert_eq!(prod[1].name.as_str(), "prod/database_url");
    assert!(prod[1].required, "unset fields are inherited");
    assert_eq!(prod[1].at.line, 21);
    assert!(!prod[5].required);
    assert!(c.declared(Some("nope")).is_err());
}

#[test]
fn bad_declared_secrets_are_problems_with_positions() {
    let text = r#"[secrets]
"1BAD" = "a/b"
OK = { name = "../x" }
NO_NAME = { required = true }
TYPE = { name = "a/b", required = "yes" }
GEN = { name = "a/g", generate = { length = 0, charset = "emoji" } }
BOTH = { name = "a/c", default = "x", generate = true }
ODD = { name = "a/d", colour = "red" }
LIST = ["a"]

[profiles.p]
stores = []
secrets = { NEW = { required = false } }
"#;
    let p = problems(text);
    let has = |line: usize, part: &str| {
        assert!(
            p.iter().any(|(l, _, m)| *l == line && m.contains(part)),
            "line {line}: {part:?} not in {p:#?}"
        )
    };
    has(2, "not an environment variable name");
    has(3, "secret OK");
    has(4, "secret NO_NAME: no name");
    has(5, "required must be true or false, not string");
    has(6, "generate.length must be from 1 to 4096");
    has(6, "unknown charset \"emoji\"");
    has(7, "give default or generate, not both");
    has(8, "unknown key 'colour'");
    has(9, "write a name");
    has(13, "secret NEW: no name");
    // Problems never echo a default's value.
    assert!(!p.iter().any(|(_, _, m)| m.contains("\"x\"")));
}

#[test]
fn var_names() {
    for ok in ["A", "_X", "OPENAI_API_KEY", "a1"] {
        assert!(valid_var_name(ok), "{ok}");
    }
    for bad in ["", "1A", "A-B", "A B", "A=B", "Ä", &"A".repeat(300)] {
        assert!(!valid_var_name(bad), "{bad}");
    }
}
