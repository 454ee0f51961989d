//! tresor's stores beyond the embedded vault, one module and one cargo feature
//! each, all behind [`tresor_core::Store`].
//!
//! | feature | module | store |
//! | --- | --- | --- |
//! | `env` (default) | `env` | environment variables, read-only |
//! | `openbao` | `openbao` | OpenBao / HashiCorp Vault KV v2 over HTTP |
//! | `azure` | `azure` | Azure Key Vault secrets through Azure's SDK (not yet verified against Azure) |
//! | `aws` | `aws` | AWS Secrets Manager through the official SDK |
//! | `keychain` | `keychain` | the OS keychain through keyring-core |
//! | `dtpy` | `dtpy` | dtPyAppFramework `.v3keystore` files, read and written natively |
//! | `conformance` | `conformance` | the suite every store passes (for tests) |
//! | (always) | `options` | [`StoreOptions`]: a store's `tresor.toml` options |
//! | (always) | `registry` | every store kind: built from its options, behind its feature |
//!
//! ```
//! # #[cfg(feature = "env")] {
//! use std::collections::BTreeMap;
//!
//! use tresor_core::{Error, PutOptions, SecretName, SecretValue, Selector, Store};
//! use tresor_stores::env::Env;
//!
//! // Env::with_prefix("MODEL_FORGE_") reads the process environment; a map
//! // stands in for it here.
//! let vars = BTreeMap::from([("MODEL_FORGE_OPENAI_API_KEY".to_string(), b"sk-test".to_vec())]);
//! let mut store: Box<dyn Store> = Box::new(Env::from_map_with_prefix(vars, "MODEL_FORGE_")?);
//!
//! let name = SecretName::new("openai/api_key")?;
//! let secret = store.get(&name, Selector::default())?;
//! assert_eq!(secret.value.expose_secret(), b"sk-test");
//! assert!(store.capabilities().read_only);
//! let refused = store.put(&name, &SecretValue::copy_from(b"x"), &PutOptions::default());
//! assert!(matches!(refused, Err(Error::ReadOnly { .. })));
//! # }
//! # Ok::<(), tresor_core::Error>(())
//! ```
//!
//! The conformance suite (feature `conformance`) runs the same checks against
//! any store, driven by its [`Capabilities`](tresor_core::Capabilities); see
//! `tests/conformance.rs` for the vault and `env` runs.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(feature = "dtpy")]
pub mod dtpy;
#[cfg(feature = "env")]
pub mod env;
#[cfg(feature = "keychain")]
pub mod keychain;
#[cfg(feature = "openbao")]
pub mod openbao;
pub mod options;
pub mod registry;
#[cfg(any(feature = "openbao", feature = "aws", feature = "azure"))]
mod remote;

pub use options::StoreOptions;
