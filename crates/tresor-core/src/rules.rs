//! Validation rules: what a value stored under a name must look like.
//!
//! A [`RuleSet`] holds the built-in [presets](PRESETS) (HuggingFace,
//! OpenAI, GitHub, AWS key ids, …, each matched by name patterns such as
//! `openai/*`) and the rules a config adds (`[[rules]]` in `tresor.toml`).
//! For a secret name:
//!
//! 1. the config rules whose `pattern` matches apply, every one of them
//!    (a rule may pull in a preset's checks with `preset = "openai"`);
//!    when at least one matches, the presets are not consulted: a config
//!    rule for a pattern replaces the preset for the names it covers, and a
//!    rule with `skip = true` turns validation off for them;
//! 2. otherwise every enabled preset whose pattern matches applies.
//!
//! Patterns are globs on the name: `*` matches any run of characters (`/`
//! included), `?` one character; everything else matches itself.
//!
//! A failure is [`Error::RuleFailed`], naming the secret, the rule and the
//! check that failed, never the value.
//!
//! ```
//! use tresor_core::{SecretName, SecretValue, rules::RuleSet};
//!
//! let rules = RuleSet::presets();
//! let name = SecretName::new("openai/api_key")?;
//! let wrong = SecretValue::copy_from(b"hf_notAnOpenAIKeyAtAll1234567890");
//! let e = rules.check(&name, &wrong).unwrap_err();
//! assert!(e.to_string().contains("'openai'"));
//! assert!(!e.to_string().contains("hf_not"));
//! // By rule name, as declared secrets' `rule = "openai"` uses it:
//! tresor_core::rules::validate("github", &SecretValue::copy_from(
//!     b"ghp_abcdefghijklmnopqrstuvwxyz0123456789"))?;
//! # Ok::<(), tresor_core::Error>(())
//! ```

use std::fmt;

use regex::Regex;

use crate::{Error, Result, SecretName, SecretValue};

/// Largest compiled size of a config rule's regex (the `regex` crate
/// matches in linear time; this bounds the memory a hostile config costs).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One built-in rule: a provider's credential format.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The rule name (`rule = "openai"`, `preset = "openai"`).
    pub name: &'static str,
    /// Name patterns it applies to when no config rule matches.
    pub patterns: &'static [&'static str],
    /// What it requires, in words (docs, `--help`).
    pub summary: &'static str,
    /// What `tresor scan` looks for in files: an unanchored regex of the
    /// token's shape, or `None` where the format has no distinctive shape
    /// (40 hex characters are as often a commit id as a W&B key).
    pub shape: Option<&'static str>,
    checks: &'static [PresetCheck],
}

#[derive(Clone, Copy, Debug)]
enum PresetCheck {
    Prefix(&'static [&'static str]),
    NotPrefix(&'static str, &'static str),
    MinLen(usize),
    MaxLen(usize),
    Charset(&'static str),
    Regex(&'static str),
}

/// The built-in rules, in the order they are documented
/// (docs/validation-and-scan.md keeps the same table).
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "huggingface",
        patterns: &["huggingface/*", "hf/*"],
        summary: "starts with hf_, at least 20 characters of A-Z a-z 0-9 _",
        shape: Some(r"\bhf_[A-Za-z0-9]{34}\b"),
        checks: &[
            PresetCheck::Prefix(&["hf_"]),
            PresetCheck::MinLen(20),
            PresetCheck::Charset("[A-Za-z0-9_]"),
        ],
    },
    Preset {
        name: "wandb",
        patterns: &["wandb/*"],
        summary: "exactly 40 hexadecimal characters",
        shape: None,
        checks: &[
            PresetCheck::MinLen(40),
            PresetCheck::MaxLen(40),
            PresetCheck::Charset("[0-9a-fA-F]"),
        ],
    },
    Preset {
        name: "openai",
        patterns: &["openai/*"],
        summary: "starts with sk- (not sk-ant-), at least 20 characters of A-Z a-z 0-9 _ -",
        shape: Some(
            r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b",
        ),
        checks: &[
            PresetCheck::Prefix(&["sk-"]),
            PresetCheck::NotPrefix("sk-ant-", "an Anthropic key"),
            PresetCheck::MinLen(20),
            PresetCheck::Charset("[A-Za-z0-9_-]"),
        ],
    },
    Preset {
        name: "anthropic",
        patterns: &["anthropic/*"],
        summary: "starts with sk-ant-, at least 30 characters of A-Z a-z 0-9 _ -",
        shape: Some(r"\bsk-ant-[A-Za-z0-9_-]{32,}"),
        checks: &[
            PresetCheck::Prefix(&["sk-ant-"]),
            PresetCheck::MinLen(30),
            PresetCheck::Charset("[A-Za-z0-9_-]"),
        ],
    },
    Preset {
        name: "github",
        patterns: &["github/*"],
        summary: "starts with ghp_, github_pat_ (or gho_, ghu_, ghs_, ghr_), at least 40 \
                  characters of A-Z a-z 0-9 _",
        shape: Some(r"\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{82}\b"),
        checks: &[
            PresetCheck::Prefix(&["ghp_", "github_pat_", "gho_", "ghu_", "ghs_", "ghr_"]),
            PresetCheck::MinLen(40),
            PresetCheck::Charset("[A-Za-z0-9_]"),
        ],
    },
    Preset {
        name: "aws-access-key-id",
        patterns: &["aws/*key_id", "aws/*key-id", "*aws_access_key_id"],
        summary: "AKIA or ASIA, then 16 characters of A-Z 0-9",
        shape: Some(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
        checks: &[
            PresetCheck::Prefix(&["AKIA", "ASIA"]),
            PresetCheck::Regex("(?:AKIA|ASIA)[A-Z0-9]{16}"),
        ],
    },
    Preset {
        name: "slack",
        patterns: &["slack/*"],
        summary: "xox?- (xoxb-, xoxp-, …), at least 15 characters of A-Z a-z 0-9 -",
        shape: Some(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        checks: &[
            PresetCheck::Regex("xox[a-z]-[A-Za-z0-9-]+"),
            PresetCheck::MinLen(15),
        ],
    },
    Preset {
        name: "stripe",
        patterns: &["stripe/*"],
        summary: "starts with sk_live_ or sk_test_, at least 20 characters of A-Z a-z 0-9 _",
        shape: Some(r"\bsk_(?:live|test)_[A-Za-z0-9]{20,}"),
        checks: &[
            PresetCheck::Prefix(&["sk_live_", "sk_test_"]),
            PresetCheck::MinLen(20),
            PresetCheck::Charset("[A-Za-z0-9_]"),
        ],
    },
    Preset {
        name: "runpod",
        patterns: &["runpod/*"],
        summary: "at least 20 characters, no white space",
        shape: None,
        checks: &[PresetCheck::MinLen(20), PresetCheck::Charset("[!-~]")],
    },
    Preset {
        name: "lambda",
        patterns: &["lambda/*", "lambdalabs/*"],
        summary: "at least 20 characters, no white space",
        shape: None,
        checks: &[PresetCheck::MinLen(20), PresetCheck::Charset("[!-~]")],
    },
    Preset {
        name: "vastai",
        patterns: &["vastai/*", "vast/*", "vast.ai/*"],
        summary: "at least 20 characters, no white space",
        shape: None,
        checks: &[PresetCheck::MinLen(20), PresetCheck::Charset("[!-~]")],
    },
];

/// The preset named `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Checks `value` against the preset named `rule_name`, for callers with
/// no config at hand (a config's named rules: [`RuleSet::check_rule`]).
/// An unknown rule name is [`Error::Validation`]; a failed check is
/// [`Error::RuleFailed`] without a secret name.
pub fn validate(rule_name: &str, value: &SecretValue) -> Result<()> {
    RuleSet::presets().check_rule(rule_name, value)
}

/// One check of a rule.
#[derive(Clone, Debug)]
pub enum Check {
    /// Starts with one of these.
    Prefix(Vec<String>),
    /// Does not start with this (the second string says what such a value
    /// is, e.g. "an Anthropic key").
    NotPrefix(String, String),
    /// At least this many characters.
    MinLen(usize),
    /// At most this many characters.
    MaxLen(usize),
    /// The whole value matches this regex (anchored at both ends).
    Regex(Pattern),
    /// Every character is in this set (a regex character class).
    Charset(Charset),
    /// Standard base64 (with padding), or base64url without it.
    Base64,
    /// A PEM block (`-----BEGIN LABEL-----` … `-----END LABEL-----`), with
    /// this label when one is given.
    Pem(Option<String>),
}

/// A compiled regex and the text it came from.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` to match whole values.
    pub fn new(source: &str) -> Result<Self> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| Error::Validation(format!("regex {source:?}: {}", last_line(&e))))?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A set of allowed characters: a name (`alnum`, `hex`, `base64`,
/// `base64url`, `printable`, `digits`, `alpha`) or a regex character class
/// such as `[A-Za-z0-9_-]`.
#[derive(Clone, Debug)]
pub struct Charset {
    source: String,
    regex: Regex,
}

impl Charset {
    /// The set named or written as a class.
    pub fn new(source: &str) -> Result<Self> {
        let class = match source {
            "alnum" => "[A-Za-z0-9]",
            "alpha" => "[A-Za-z]",
            "digits" => "[0-9]",
            "hex" => "[0-9a-fA-F]",
            "base64" => "[A-Za-z0-9+/=]",
            "base64url" => "[A-Za-z0-9_=-]",
            "printable" => "[ -~]",
            s if s.starts_with('[') && s.ends_with(']') && s.len() > 2 => s,
            _ => {
                return Err(Error::Validation(format!(
                    "charset {source:?}: expected alnum, alpha, digits, hex, base64, base64url, \
                     printable or a character class such as \"[A-Za-z0-9_-]\""
                )));
            }
        };
        let regex = regex::RegexBuilder::new(&format!("^{class}*$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| Error::Validation(format!("charset {source:?}: {}", last_line(&e))))?;
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }
}

/// A named list of checks, applied to the names its patterns match.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's name: a preset's, a config rule's `name`, or
    /// `rules[N]` (its place in the config, from 1).
    pub name: String,
    /// Name globs it applies to (empty: only by name, `rule = "…"`).
    pub patterns: Vec<String>,
    /// The checks, all of which must pass.
    pub checks: Vec<Check>,
    /// Turns validation off for the names it matches (presets included).
    pub skip: bool,
    /// Where it came from, for messages: `preset`, or `tresor.toml:12`.
    pub origin: String,
}

impl Rule {
    /// A rule with no checks yet.
    pub fn new(name: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            patterns: Vec::new(),
            checks: Vec::new(),
            skip: false,
            origin: origin.into(),
        }
    }

    /// The preset's rule.
    pub fn from_preset(p: &Preset) -> Self {
        let mut rule = Self::new(p.name, "preset");
        rule.patterns = p.patterns.iter().map(|s| s.to_string()).collect();
        rule.add_preset_checks(p);
        rule
    }

    /// Adds the checks of preset `p` to this rule.
    pub fn add_preset_checks(&mut self, p: &Preset) {
        for c in p.checks {
            // Preset checks are constants, compiled by a test of every preset.
            let check = match *c {
                PresetCheck::Prefix(list) => {
                    Check::Prefix(list.iter().map(|s| s.to_string()).collect())
                }
                PresetCheck::NotPrefix(prefix, what) => {
                    Check::NotPrefix(prefix.into(), what.into())
                }
                PresetCheck::MinLen(n) => Check::MinLen(n),
                PresetCheck::MaxLen(n) => Check::MaxLen(n),
                PresetCheck::Charset(c) => {
                    Check::Charset(Charset::new(c).expect("preset charsets compile (tested)"))
                }
                PresetCheck::Regex(r) => {
                    Check::Regex(Pattern::new(r).expect("preset regexes compile (tested)"))
                }
            };
            self.checks.push(check);
        }
    }

    /// Whether one of the rule's patterns matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob_matches(p, name))
    }

    /// Checks `value`: the first failed check's problem, in words that never
    /// hold the value.
    pub fn problem(&self, value: &SecretValue) -> Option<String> {
        let bytes = value.expose_secret();
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) if self.checks.is_empty() => return None,
            Err(_) => return Some("the value is not UTF-8 text".into()),
        };
        let chars = text.chars().count();
        for check in &self.checks {
            let problem = match check {
                Check::Prefix(list) if !list.iter().any(|p| text.starts_with(p.as_str())) => {
                    Some(format!("must start with {}", one_of(list)))
                }
                Check::NotPrefix(prefix, what) if text.starts_with(prefix.as_str()) => {
                    Some(format!("starts with {prefix:?}, which is {what}"))
                }
                Check::MinLen(n) if chars < *n => Some(format!(
                    "must be at least {n} characters long (it is {chars})"
                )),
                Check::MaxLen(n) if chars > *n => Some(format!(
                    "must be at most {n} characters long (it is {chars})"
                )),
                Check::Regex(p) if !p.regex.is_match(text) => {
                    Some(format!("must match the regex {:?}", p.source))
                }
                Check::Charset(c) if !c.regex.is_match(text) => Some(format!(
                    "holds a character outside the charset {:?}{}",
                    c.source,
                    if text.trim() != text {
                        " (leading or trailing white space?)"
                    } else {
                        ""
                    }
                )),
                Check::Base64 if !is_base64(text) => {
                    Some("must be base64 (standard with padding, or base64url)".into())
                }
                Check::Pem(label) => pem_problem(text, label.as_deref()),
                _ => None,
            };
            if problem.is_some() {
                return problem;
            }
        }
        None
    }
}

/// The rules in force: presets (unless turned off) and config rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// Whether the presets are in force. They are compiled once per
    /// process, at the first check ([`preset_rules`]): compiling their
    /// regexes and charsets was over half of the instructions of a whole
    /// `tresor get`, which checks nothing.
    presets: bool,
    rules: Vec<Rule>,
}

/// Every preset as a compiled rule, built at the first call.
fn preset_rules() -> &'static [Rule] {
    static RULES: std::sync::LazyLock<Vec<Rule>> =
        std::sync::LazyLock::new(|| PRESETS.iter().map(Rule::from_preset).collect());
    &RULES
}

impl Default for RuleSet {
    /// The presets alone.
    fn default() -> Self {
        Self::presets()
    }
}

impl RuleSet {
    /// Every preset, no config rules.
    pub fn presets() -> Self {
        Self {
            presets: true,
            rules: Vec::new(),
        }
    }

    /// No rules at all: every value passes.
    pub fn none() -> Self {
        Self {
            presets: false,
            rules: Vec::new(),
        }
    }

    /// Adds a config rule (after those added before).
    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// The config rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that apply to `name`: the matching config rules, else the
    /// matching presets (see the [module docs](self)). Empty when a
    /// matching config rule says `skip = true`.
    pub fn rules_for(&self, name: &str) -> Vec<&Rule> {
        let config: Vec<&Rule> = self.rules.iter().filter(|r| r.matches(name)).collect();
        if config.iter().any(|r| r.skip) {
            return Vec::new();
        }
        if !config.is_empty() {
            return config;
        }
        if !self.presets {
            return Vec::new();
        }
        preset_rules().iter().filter(|r| r.matches(name)).collect()
    }

    /// Checks the value about to be stored under `name`.
    pub fn check(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        for rule in self.rules_for(name.as_str()) {
            if let Some(problem) = rule.problem(value) {
                return Err(failed(Some(name.as_str()), rule, problem));
            }
        }
        Ok(())
    }

    /// Checks `value` against the rule named `rule_name`: a config rule with
    /// that `name`, else a preset. An unknown name is [`Error::Validation`].
    pub fn check_rule(&self, rule_name: &str, value: &SecretValue) -> Result<()> {
        let rule = self
            .rules
            .iter()
            .find(|r| r.name == rule_name)
            .map(std::borrow::Cow::Borrowed)
            .or_else(|| preset(rule_name).map(|p| std::borrow::Cow::Owned(Rule::from_preset(p))))
            .ok_or_else(|| {
                Error::Validation(format!(
                    "no validation rule named '{rule_name}' (presets: {}; config rules are \
                     named with name = \"…\" in [[rules]])",
                    PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        match rule.problem(value) {
            Some(problem) => Err(failed(None, &rule, problem)),
            None => Ok(()),
        }
    }
}

/// Whether glob `pattern` (`*` any run of characters, `?` one) matches
/// all of `name`.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    // ASCII (every name the presets match): on the bytes, no allocation;
    // every write checks each name against every pattern.
    if pattern.is_ascii() && name.is_ascii() {
        return glob_slices(pattern.as_bytes(), name.as_bytes(), b'*', b'?');
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    glob_slices(&p, &n, '*', '?')
}

fn glob_slices<T: PartialEq + Copy>(p: &[T], n: &[T], any_run: T, any_one: T) -> bool {
    // Iterative matching with one backtrack point: linear in practice,
    // O(p·n) at worst, and no recursion for hostile patterns.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == any_one || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == any_run {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == any_run)
}

fn failed(name: Option<&str>, rule: &Rule, problem: String) -> Error {
    Error::RuleFailed {
        name: name.map(str::to_string),
        rule: rule.name.clone(),
        origin: rule.origin.clone(),
        problem,
    }
}

fn one_of(list: &[String]) -> String {
    match list {
        [one] => format!("{one:?}"),
        _ => format!(
            "one of {}",
            list.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn is_base64(text: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    // The decoded bytes are wiped: they are the secret in another form.
    let decoded = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text));
    match decoded {
        Ok(bytes) => {
            drop(zeroize::Zeroizing::new(bytes));
            !text.is_empty()
        }
        Err(_) => false,
    }
}

fn pem_problem(text: &str, label: Option<&str>) -> Option<String> {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let Some(found) = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
    else {
        return Some("must be a PEM block starting with a -----BEGIN …----- line".into());
    };
    if let Some(want) = label
        && found != want
    {
        return Some(format!("must be a PEM block labelled {want:?}"));
    }
    let end = format!("-----END {found}-----");
    let body: Vec<&str> = lines.collect();
    match body.split_last() {
        Some((last, inner)) if *last == end => {
            let ok = inner.iter().all(|l| {
                l.contains(':')
                    || l.is_empty()
                    || l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            });
            if ok && !inner.is_empty() {
                None
            } else {
                Some("the PEM block's body is not base64".into())
            }
        }
        _ => Some(format!("must end with the PEM line {end:?}")),
    }
}

fn last_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests;
