//! `tresor config check`: what parsing cannot see, checked without
//! contacting any store.

#[allow(unused_imports)]
use super::*;

/// Checks what parsing cannot: each store's references resolve (`ENV/`
/// variables set, `SEC/` secrets held by the local vault, through `secret`)
/// and its options are the ones its kind reads, without contacting any
/// store. Each problem points at the option concerned.
pub fn check_config(config: &Config, secret: &mut SecretLookup<'_>) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    for store in &config.stores {
        let at = |key: &str| config.option_position(&store.name, key).unwrap_or(store.at);
        let mut options = StoreOptions::new(store.name.clone());
        let mut resolved = true;
        for (key, value) in &store.options {
            let text = match value {
                OptionValue::Text(t) => Ok(Zeroizing::new(t.clone())),
                OptionValue::Env(var) => std::env::var(var)
                    .map(Zeroizing::new)
                    .map_err(|_| format!("ENV/{var} is not set")),
                OptionValue::Secret(name, version) => secret(name, *version).map_err(|e| match e {
                    Error::NotFound { .. } => {
                        format!("{} is not in the local vault", value.describe())
                    }
                    e => format!("{} cannot be read: {e}", value.describe()),
                }),
            };
            match text {
                Ok(t) => options.insert(key.clone(), t.as_str()),
                Err(why) => {
                    resolved = false;
                    problems.push(config.problem(
                        at(key),
                        format!("store '{}': option '{key}': {why}", store.name),
                    ));
                }
            }
        }
        if !resolved {
            continue;
        }
        if let Err(e) = check_store_options(store.kind, &options) {
            let message = e.to_string();
            let mentioned: Vec<&String> = store
                .options
                .keys()
                .filter(|k| message.contains(&format!("'{k}'")))
                .collect();
            if message.contains("unknown option") && !mentioned.is_empty() {
                for key in mentioned {
                    problems.push(config.problem(
                        at(key),
                        format!(
                            "store '{}': unknown option '{key}' for the {} store kind",
                            store.name, store.kind
                        ),
                    ));
                }
            } else {
                let pos = mentioned.first().map_or(store.at, |k| at(k));
                problems.push(config.problem(pos, message));
            }
        }
    }
    problems
}
