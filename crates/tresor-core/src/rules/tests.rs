use super::*;

fn v(text: &str) -> SecretValue {
    SecretValue::copy_from(text.as_bytes())
}

fn name(text: &str) -> SecretName {
    SecretName::new(text).unwrap()
}

/// Per preset: a name it covers, values that pass, values that fail.
const EXAMPLES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "huggingface",
        "huggingface/token",
        &["hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"],
        &[
            "abcdefghijklmnopqrstuvwxyz",
            "hf_short",
            "hf_abcdefghijklmnop qrstuvwxyz",
        ],
    ),
    (
        "wandb",
        "wandb/api_key",
        &["0123456789abcdef0123456789abcdef01234567"],
        &[
            "0123456789abcdef0123456789abcdef0123456",
            "0123456789abcdef0123456789abcdef0123456g",
        ],
    ),
    (
        "openai",
        "openai/api_key",
        &[
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "sk-abcdefghijklmnopqrstuv",
        ],
        &[
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
            "pk-abcdefghijklmnopqrstuvwxyz",
            "sk-short",
        ],
    ),
    (
        "anthropic",
        "anthropic/api_key",
        &["sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"],
        &["sk-proj-abcdefghijklmnopqrstuvwxyz012345", "sk-ant-short"],
    ),
    (
        "github",
        "github/token",
        &[
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz0123456789",
        ],
        &[
            "gh_abcdefghijklmnopqrstuvwxyz0123456789xx",
            "ghp_short",
            "ghp_abcdefghijklmnopqrstuvwxyz-123456789",
        ],
    ),
    (
        "aws-access-key-id",
        "aws/access_key_id",
        &["AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE"],
        &[
            "AKIAiosfodnn7example",
            "AKIAIOSFODNN7EXAMPLEX",
            "ABIAIOSFODNN7EXAMPLE",
        ],
    ),
    (
        "slack",
        "slack/bot_token",
        &["xoxb-1234567890-abcdefghij"],
        &[
            "xox-1234567890-abcdefghij",
            "xoxb-12",
            "slack-1234567890-abcdefghij",
        ],
    ),
    (
        "stripe",
        "stripe/secret_key",
        &[
            "sk_live_abcdefghijklmnopqrstuvwx",
            "sk_test_abcdefghijklmnopqrstuvwx",
        ],
        &["pk_live_abcdefghijklmnopqrstuvwx", "sk_live_short"],
    ),
    (
        "runpod",
        "runpod/api_key",
        &["rpa_ABCDEFGHIJKLMNOPQRSTUVWX"],
        &["too-short", "abcdefghij klmnopqrstuvwxyz"],
    ),
    (
        "lambda",
        "lambda/api_key",
        &["secret_abcdefghijklmnopqrstuvwx"],
        &["too-short"],
    ),
    (
        "vastai",
        "vastai/api_key",
        &["0123456789abcdef0123456789abcdef"],
        &["0123456789", "0123456789abcdef\n0123456789abcdef"],
    ),
];

#[test]
fn every_preset_passes_its_examples_and_refuses_its_counterexamples() {
    assert_eq!(EXAMPLES.len(), PRESETS.len(), "an example row per preset");
    let rules = RuleSet::presets();
    for (preset, secret, good, bad) in EXAMPLES {
        let n = name(secret);
        let applied: Vec<&str> = rules
            .rules_for(secret)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(applied, [*preset], "{secret}");
        for value in *good {
            rules
                .check(&n, &v(value))
                .unwrap_or_else(|e| panic!("{preset}: {e}"));
            validate(preset, &v(value)).unwrap();
        }
        for value in *bad {
            let e = rules.check(&n, &v(value)).expect_err(value);
            let text = e.to_string();
            assert_eq!(e.kind(), "rule_failed");
            assert!(text.contains(&format!("'{preset}'")), "{text}");
            assert!(text.contains(secret), "{text}");
            assert!(!text.contains(value), "the value is echoed: {text}");
            assert!(validate(preset, &v(value)).is_err());
        }
    }
}

#[test]
fn preset_shapes_compile_and_find_their_tokens() {
    for p in PRESETS {
        if let Some(shape) = p.shape {
            regex::Regex::new(shape).unwrap();
        }
    }
    let shape = |n: &str| regex::Regex::new(preset(n).unwrap().shape.unwrap()).unwrap();
    assert!(shape("aws-access-key-id").is_match("key = AKIAIOSFODNN7EXAMPLE\n"));
    assert!(!shape("aws-access-key-id").is_match("AKIAIOSFODNN7EXAMPL"));
    assert!(shape("github").is_match("token: ghp_abcdefghijklmnopqrstuvwxyz0123456789"));
    assert!(shape("huggingface").is_match("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"));
}

#[test]
fn names_outside_every_pattern_are_not_checked() {
    let rules = RuleSet::presets();
    assert!(rules.rules_for("db/password").is_empty());
    rules.check(&name("db/password"), &v("x")).unwrap();
    // Binary values pass where no rule applies.
    rules
        .check(&name("db/key"), &SecretValue::copy_from(&[0xff, 0]))
        .unwrap();
    let e = rules
        .check(&name("openai/k"), &SecretValue::copy_from(&[0xff, 0]))
        .unwrap_err();
    assert!(e.to_string().contains("not UTF-8"));
}

#[test]
fn globs() {
    assert!(glob_matches("openai/*", "openai/api_key"));
    assert!(glob_matches("openai/*", "openai/prod/api_key"));
    assert!(!glob_matches("openai/*", "openai"));
    assert!(!glob_matches("openai/*", "xopenai/k"));
    assert!(glob_matches("*aws_access_key_id", "aws_access_key_id"));
    assert!(glob_matches("*aws_access_key_id", "prod/aws_access_key_id"));
    assert!(glob_matches("a?c", "abc"));
    assert!(!glob_matches("a?c", "ac"));
    assert!(glob_matches("*", ""));
    assert!(glob_matches("a*b*c", "aXbYbZc"));
    assert!(!glob_matches("a*b*c", "aXbYbZ"));
    // A hostile pattern stays quick.
    let long = "a".repeat(4000);
    assert!(!glob_matches(&format!("{}b", "*a".repeat(200)), &long));
}

fn rule(pattern: &str, checks: Vec<Check>) -> Rule {
    let mut r = Rule::new("mine", "tresor.toml:3");
    r.patterns = vec![pattern.into()];
    r.checks = checks;
    r
}

#[test]
fn every_kind_of_check() {
    let cases: Vec<(Check, &str, &str, &str)> = vec![
        (
            Check::Prefix(vec!["ab".into(), "cd".into()]),
            "cdxx",
            "xx",
            "one of \"ab\", \"cd\"",
        ),
        (
            Check::NotPrefix("x".into(), "a test".into()),
            "yy",
            "xy",
            "which is a test",
        ),
        (Check::MinLen(3), "abc", "ab", "at least 3"),
        (Check::MaxLen(3), "äbc", "abcd", "at most 3"),
        (
            Check::Regex(Pattern::new("[a-z]+-[0-9]+").unwrap()),
            "ab-12",
            "ab-12x",
            "regex",
        ),
        (
            Check::Charset(Charset::new("hex").unwrap()),
            "beef",
            "beefy",
            "charset \"hex\"",
        ),
        (
            Check::Charset(Charset::new("[a-c]").unwrap()),
            "abc",
            " abc",
            "white space",
        ),
        (Check::Base64, "aGVsbG8=", "not base64!", "base64"),
        (Check::Base64, "aGVsbG8", "", "base64"),
        (
            Check::Pem(None),
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMIIB\n",
            "PEM",
        ),
        (
            Check::Pem(Some("CERTIFICATE".into())),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
            "labelled \"CERTIFICATE\"",
        ),
        (
            Check::Pem(None),
            "-----BEGIN X-----\nMIIB\n-----END X-----",
            "-----BEGIN X-----\nM I I B\n-----END X-----",
            "not base64",
        ),
    ];
    for (check, good, bad, words) in cases {
        let mut set = RuleSet::presets();
        set.push(rule("app/*", vec![check]));
        set.check(&name("app/k"), &v(good))
            .unwrap_or_else(|e| panic!("{good:?}: {e}"));
        let e = set.check(&name("app/k"), &v(bad)).expect_err(bad);
        let text = e.to_string();
        assert!(text.contains(words), "{text}");
        assert!(
            text.contains("'mine'") && text.contains("tresor.toml:3"),
            "{text}"
        );
    }
}

#[test]
fn config_rules_replace_presets_and_skip_turns_them_off() {
    let mut set = RuleSet::presets();
    // A config rule for openai/* replaces the preset for those names.
    set.push(rule("openai/*", vec![Check::MinLen(5)]));
    set.check(&name("openai/k"), &v("hello")).unwrap();
    assert!(set.check(&name("openai/k"), &v("hi")).is_err());
    // Other presets still apply.
    assert!(set.check(&name("github/k"), &v("hello")).is_err());
    // skip = true turns validation off for its names.
    let mut off = rule("github/*", vec![]);
    off.skip = true;
    set.push(off);
    set.check(&name("github/k"), &v("hello")).unwrap();
    // Every matching config rule applies.
    set.push(rule(
        "openai/prod/*",
        vec![Check::Prefix(vec!["sk-".into()])],
    ));
    assert!(set.check(&name("openai/prod/k"), &v("hello")).is_err());
    set.check(&name("openai/prod/k"), &v("sk-hello")).unwrap();
}

#[test]
fn a_rule_can_extend_a_preset_and_be_called_by_name() {
    let mut r = rule("prod/llm_key", vec![Check::MinLen(30)]);
    r.name = "long-openai".into();
    r.add_preset_checks(preset("openai").unwrap());
    let mut set = RuleSet::presets();
    set.push(r);
    assert!(
        set.check(&name("prod/llm_key"), &v("sk-abcdefghijklmnopqrstuv"))
            .is_err()
    );
    set.check(
        &name("prod/llm_key"),
        &v("sk-abcdefghijklmnopqrstuvwxyz0123"),
    )
    .unwrap();
    assert!(
        set.check_rule("long-openai", &v("sk-abcdefghijklmnopqrstuv"))
            .is_err()
    );
    set.check_rule("openai", &v("sk-abcdefghijklmnopqrstuv"))
        .unwrap();
    let e = set.check_rule("nope", &v("x")).unwrap_err();
    assert_eq!(e.kind(), "validation");
    assert!(e.to_string().contains("huggingface"));
    let e = validate("openai", &v("nope")).unwrap_err();
    assert!(e.to_string().starts_with("the value does not pass"), "{e}");
}

#[test]
fn bad_regexes_and_charsets_are_refused() {
    assert!(Pattern::new("(").is_err());
    assert!(Pattern::new("a{1000}{1000}").is_err(), "size limit");
    assert!(Charset::new("emoji").is_err());
    assert!(Charset::new("[]").is_err());
}
