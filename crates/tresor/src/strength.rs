//! Password strength: a new password (a vault's first slot, a changed
//! password, an added password slot) below a minimum strength is refused,
//! whoever asks for it — the CLI, the manager, a binding — so they all
//! judge passwords alike.
//!
//! The estimate is zxcvbn's: the number of guesses an attacker who knows
//! common passwords, words, names, keyboard patterns, dates and
//! substitutions would need, as a score from 0 to 4. A password slot is
//! protected by Argon2id, which makes each guess costly, but a password in
//! the top ten thousand falls to any budget; score 3 ("safely
//! unguessable: moderate protection from an offline attack on a slow
//! hash") is the least accepted.

use tresor_core::{Error, Result};

/// The least zxcvbn score a new password must reach (0 to 4).
pub const MIN_SCORE: u8 = 3;

/// Only this many characters are estimated (zxcvbn's own cap, which
/// bounds its work on hostile input); the rest count for nothing.
const ESTIMATED_CHARS: usize = 100;

/// The strength of a password: zxcvbn's score and, below
/// [`MIN_SCORE`], why in general terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strength {
    /// 0 (guessed at once) to 4 (very unguessable).
    pub score: u8,
    /// What is wrong and what would help (zxcvbn's fixed sentences: they
    /// never hold the password or a part of it); empty when the score is
    /// high enough.
    pub feedback: String,
}

impl Strength {
    /// Whether the password reaches [`MIN_SCORE`].
    pub fn is_enough(&self) -> bool {
        self.score >= MIN_SCORE
    }
}

/// Estimates `password`'s strength. `context` holds words an attacker
/// could guess from the setting (a user name, the vault's folder), which
/// count as weak parts of the password.
pub fn estimate(password: &str, context: &[&str]) -> Strength {
    let entropy = zxcvbn::zxcvbn(password, context);
    let score = u8::from(entropy.score());
    if score >= MIN_SCORE {
        return Strength {
            score,
            feedback: String::new(),
        };
    }
    let mut parts = Vec::new();
    if let Some(f) = entropy.feedback() {
        if let Some(w) = f.warning() {
            parts.push(w.to_string());
        }
        parts.extend(f.suggestions().iter().map(ToString::to_string));
    }
    if parts.is_empty() {
        parts.push("It would be guessed too easily.".into());
    }
    if password.chars().count() > ESTIMATED_CHARS {
        parts.push(format!(
            "Only the first {ESTIMATED_CHARS} characters are judged."
        ));
    }
    Strength {
        score,
        feedback: parts.join(" "),
    }
}

/// Refuses a new password below [`MIN_SCORE`] with
/// [`Error::WeakPassword`], whose message says why without the password.
pub fn check_new_password(password: &str, context: &[&str]) -> Result<()> {
    let strength = estimate(password, context);
    if strength.is_enough() {
        return Ok(());
    }
    Err(Error::WeakPassword {
        feedback: format!(
            "{} (strength {} of 4; at least {MIN_SCORE} is needed)",
            strength.feedback, strength.score
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_short_passwords_are_refused_long_phrases_pass() {
        for weak in [
            "",
            "password",
            "pw-one",
            "hunter2",
            "qwertyuiop",
            "Passw0rd!",
            "aaaaaaaaaaaa",
        ] {
            let e = check_new_password(weak, &[]).expect_err(weak);
            let text = e.to_string();
            assert!(matches!(e, Error::WeakPassword { .. }), "{weak}: {e:?}");
            assert!(text.contains("at least 3"), "{text}");
            // The message never echoes the password ("password" is a word
            // of the message itself).
            if weak.len() >= 4 && weak != "password" {
                assert!(!text.contains(weak), "{weak} echoed: {text}");
            }
        }
        for strong in [
            "correct horse battery staple",
            "vivid-otter-marble-canyon-42",
            "Gq7#vN2!pL9@xR4$",
        ] {
            check_new_password(strong, &[]).unwrap_or_else(|e| panic!("{strong}: {e}"));
        }
    }

    #[test]
    fn context_words_weaken_a_password() {
        let pw = "tresorvaultalice";
        assert!(estimate(pw, &["tresor", "vault", "alice"]).score < estimate(pw, &[]).score);
    }

    #[test]
    fn hostile_lengths_are_bounded() {
        // A megabyte of text is judged on its first characters only, fast.
        let long = "ab".repeat(500_000);
        let s = estimate(&long, &[]);
        assert!(!s.is_enough());
        assert!(
            s.feedback.contains("first 100 characters"),
            "{}",
            s.feedback
        );
    }
}
