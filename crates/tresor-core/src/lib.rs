//! tresor's domain: what a secret is, how it is named and versioned, what can go
//! wrong, and the [`Store`] contract every backend implements.
//!
//! ```
//! use tresor_core::{SecretName, SecretValue};
//!
//! let name = SecretName::new("openai/api_key")?;
//! let value = SecretValue::from(b"sk-example".to_vec());
//! assert_eq!(format!("{value:?}"), "[redacted]");
//! assert_eq!(value.expose_secret(), b"sk-example");
//! assert!(SecretName::new("../etc/passwd").is_err());
//! # Ok::<(), tresor_core::Error>(())
//! ```

// Unsafe code only where tresor-core calls libc: see the two modules below.
#![deny(unsafe_code)]

mod audit_op;
mod duration;
mod error;
// SAFETY (module): mlock/munlock of buffers the caller keeps alive, setrlimit
// and prctl on this process, getpwuid_r into local buffers; each call has its
// own SAFETY comment.
#[allow(unsafe_code)]
pub mod memory;
mod metadata;
mod name;
// SAFETY (module): geteuid and getuid, which have no preconditions.
#[allow(unsafe_code)]
pub mod perm;
pub mod rules;
mod store;
mod value;
mod version;

pub use audit_op::Operation;
pub use duration::parse_duration;
pub use error::{Error, Result, human_age};
pub use metadata::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY, MAX_METADATA_VALUE, Metadata,
    validate as validate_metadata,
};
pub use name::{MAX_NAME_LEN, SecretName};
pub use store::{Capabilities, DeleteMode, Health, PutOptions, Secret, SecretInfo, Store};
pub use value::{DEFAULT_MAX_VALUE_LEN, SecretValue};
pub use version::{Label, Selector, VersionInfo};
