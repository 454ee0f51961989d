//! The store kinds of a `tresor.toml` and how each is built from its
//! options: one arm per kind, each behind the cargo feature that brings the
//! store in, so a build without a feature says so instead of failing to
//! compile. (`vault` stores are opened by the manager, which holds the
//! unlock chain; here they only have their options checked.)
//!
//! ```
//! use tresor_stores::{StoreOptions, registry};
//!
//! let options = StoreOptions::new("ci").with("prefix", "MODEL_FORGE_");
//! # #[cfg(feature = "env")] {
//! let store = registry::build("env", &options)?;
//! assert!(store.capabilities().read_only);
//! # }
//! let typo = StoreOptions::new("ci").with("prefx", "MODEL_FORGE_");
//! # #[cfg(feature = "env")]
//! assert_eq!(registry::check_options("env", &typo).unwrap_err().kind(), "invalid_option");
//! # Ok::<(), tresor_core::Error>(())
//! ```

use tresor_core::{Error, Result, Store};

use crate::StoreOptions;

/// Every kind a `tresor.toml` may name, built into this binary or not.
pub const KINDS: [&str; 7] = [
    "vault", "keychain", "env", "openbao", "aws", "azure", "dtpy",
];

/// Whether this build can make stores of `kind`.
// With every feature on, the arms all read `true`; the match is the matrix.
#[allow(clippy::match_like_matches_macro)]
pub fn in_build(kind: &str) -> bool {
    match kind {
        "vault" => true,
        "env" => cfg!(feature = "env"),
        "openbao" => cfg!(feature = "openbao"),
        "keychain" => cfg!(feature = "keychain"),
        "aws" => cfg!(feature = "aws"),
        "azure" => cfg!(feature = "azure"),
        "dtpy" => cfg!(feature = "dtpy"),
        _ => false,
    }
}

/// The store of kind `kind` from its options. Remote stores are only built
/// (an AppRole login is the one request that may be sent); `health` probes
/// them. `vault` is refused: the manager opens vaults.
pub fn build(kind: &str, options: &StoreOptions) -> Result<Box<dyn Store>> {
    match kind {
        "env" => {
            #[cfg(feature = "env")]
            return Ok(Box::new(crate::env::Env::from_options(options)?));
        }
        "openbao" => {
            #[cfg(feature = "openbao")]
            return Ok(Box::new(crate::openbao::OpenBao::from_options(options)?));
        }
        "keychain" => {
            #[cfg(feature = "keychain")]
            return Ok(Box::new(crate::keychain::Keychain::from_options(options)?));
        }
        "aws" => {
            #[cfg(feature = "aws")]
            return Ok(Box::new(crate::aws::Aws::from_options(options)?));
        }
        "azure" => {
            #[cfg(feature = "azure")]
            return Ok(Box::new(crate::azure::AzureKeyVault::from_options(
                options,
            )?));
        }
        "dtpy" => {
            #[cfg(feature = "dtpy")]
            return Ok(Box::new(crate::dtpy::Dtpy::from_options(options)?));
        }
        "vault" => {
            return Err(Error::Validation(format!(
                "store '{}': vault stores are opened by the manager",
                options.store()
            )));
        }
        _ => return Err(unknown_kind(kind, options)),
    }
    #[allow(unreachable_code)]
    Err(not_in_build(kind, options))
}

/// Checks a store's options as [`build`] would read them, without
/// contacting anything or opening a keychain. (`vault`: the option `path`
/// only.)
pub fn check_options(kind: &str, options: &StoreOptions) -> Result<()> {
    match kind {
        "vault" => {
            options.get("path");
            options.finish()
        }
        "openbao" => {
            #[cfg(feature = "openbao")]
            return crate::openbao::OpenBaoOptions::from_options(options).map(drop);
            #[cfg(not(feature = "openbao"))]
            return Err(not_in_build(kind, options));
        }
        // Opening a keychain probes the OS (D-Bus, keyutils): the options
        // only, as the store reads them.
        "keychain" => {
            #[cfg(feature = "keychain")]
            return crate::keychain::KeychainOptions::from_options(options).map(drop);
            #[cfg(not(feature = "keychain"))]
            return Err(not_in_build(kind, options));
        }
        // Their from_options builds a client without contacting the service
        // (dtpy: reads no file; the machine password is derived).
        "env" | "aws" | "azure" | "dtpy" => build(kind, options).map(drop),
        _ => Err(unknown_kind(kind, options)),
    }
}

fn not_in_build(kind: &str, options: &StoreOptions) -> Error {
    Error::InvalidOption {
        store: options.store().to_string(),
        option: "kind".to_string(),
        problem: format!("this build of tresor has no {kind} store"),
    }
}

fn unknown_kind(kind: &str, options: &StoreOptions) -> Error {
    Error::InvalidOption {
        store: options.store().to_string(),
        option: "kind".to_string(),
        problem: format!("unknown store kind {kind:?} (kinds: {})", KINDS.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_or_says_why() {
        let env = build("env", &StoreOptions::new("e")).unwrap();
        assert_eq!(env.name(), "e");
        let bao = StoreOptions::new("b")
            .with("address", "http://127.0.0.1:8200")
            .with("token", "t");
        assert_eq!(build("openbao", &bao).unwrap().name(), "b");
        let e = build("vault", &StoreOptions::new("v")).err().unwrap();
        assert!(e.to_string().contains("opened by the manager"), "{e}");
        let e = build("ftp", &StoreOptions::new("f")).err().unwrap();
        assert_eq!(e.kind(), "invalid_option");
        assert!(e.to_string().contains("openbao"), "{e}");
        for kind in KINDS {
            assert!(in_build(kind), "{kind}: the tests build every store");
        }
    }

    #[test]
    fn options_are_checked_without_contacting_anything() {
        let vault = StoreOptions::new("v").with("path", "/x.db");
        check_options("vault", &vault).unwrap();
        let typo = StoreOptions::new("v").with("pth", "/x.db");
        assert!(
            check_options("vault", &typo)
                .unwrap_err()
                .to_string()
                .contains("'pth'")
        );
        // An address nothing listens at: only the options are read.
        let bao = StoreOptions::new("b")
            .with("address", "http://127.0.0.1:1")
            .with("role_id", "r")
            .with("secret_id", "s");
        check_options("openbao", &bao).unwrap();
        let kc = StoreOptions::new("k").with("backend", "nowhere");
        assert_eq!(
            check_options("keychain", &kc).unwrap_err().kind(),
            "invalid_option"
        );
        let kc = StoreOptions::new("k")
            .with("backend", "keyutils")
            .with("service", "s");
        check_options("keychain", &kc).unwrap();
    }
}
