//! Environment variable names: the rule, and the mapping from a secret's
//! name under `--prefix`.

use tresor_core::{Error, Result, SecretName};

/// Checks that `name` can be an environment variable: ASCII letters,
/// digits and `_`, not starting with a digit.
pub fn check_variable(name: &str) -> Result<()> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "{name:?} cannot be an environment variable: use letters, digits and '_', not \
             starting with a digit"
        )))
    }
}

/// `prefix` as a folder of names: empty (everything), or ending in `/`.
pub(super) fn normalize_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// The variable for `name` under `prefix`: the rest of the name after the
/// prefix, upper-cased, with `/`, `-` and `.` turned into `_`
/// (`openai/api_key` under `openai/` is `API_KEY`; `aws/prod/secret-key`
/// under `aws/` is `PROD_SECRET_KEY`). A prefix without a final `/` is
/// taken as the folder (`openai` is `openai/`). A result that starts with a
/// digit is an error naming the secret.
///
/// ```
/// use tresor::SecretName;
/// use tresor::run::variable_for;
///
/// let name = SecretName::new("openai/api_key")?;
/// assert_eq!(variable_for("openai/", &name)?, "API_KEY");
/// let name = SecretName::new("aws/prod/secret-key.v2")?;
/// assert_eq!(variable_for("aws", &name)?, "PROD_SECRET_KEY_V2");
/// # Ok::<(), tresor::Error>(())
/// ```
pub fn variable_for(prefix: &str, name: &SecretName) -> Result<String> {
    let prefix = normalize_prefix(prefix);
    let rest = name
        .as_str()
        .strip_prefix(&prefix)
        .ok_or_else(|| Error::Validation(format!("'{name}' is not under the prefix '{prefix}'")))?;
    let variable: String = rest
        .chars()
        .map(|c| match c {
            '/' | '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    check_variable(&variable).map_err(|_| {
        Error::Validation(format!(
            "'{name}' under the prefix '{prefix}' gives {variable:?}, which cannot be an \
             environment variable; give it a variable by name instead"
        ))
    })?;
    Ok(variable)
}
