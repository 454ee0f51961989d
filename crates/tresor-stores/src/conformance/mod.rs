//! The conformance suite: one set of checks every [`Store`] passes, driven by
//! what the store says it can do ([`Store::capabilities`]).
//!
//! A store's tests give the suite a [`Fixture`], something that makes a fresh
//! store holding given secrets, and run every check against it, usually with
//! [`conformance_tests!`](crate::conformance_tests), which writes one
//! `#[test]` per check:
//!
//! ```
//! use tresor_core::{SecretName, SecretValue, Store};
//! use tresor_stores::conformance::Fixture;
//! use tresor_stores::env::Env;
//!
//! struct EnvFixture;
//!
//! impl Fixture for EnvFixture {
//!     fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
//!         let probe = Env::new();
//!         let vars = seed
//!             .iter()
//!             .map(|(name, value)| (probe.variable_for(name), value.expose_secret().to_vec()))
//!             .collect();
//!         Box::new(Env::from_map(vars))
//!     }
//! }
//!
//! // In a test file: tresor_stores::conformance_tests!(EnvFixture);
//! tresor_stores::conformance::run_all(&mut EnvFixture);
//! ```
//!
//! What is checked. Every capability a store claims is checked by using
//! it (a positive check), every one it does not claim by its refusal:
//!
//! - **round trip**: text and binary values read back byte for byte, at
//!   version 1 when written once; a read-only store refuses `put` with
//!   [`Error::ReadOnly`] and still serves what it was seeded with;
//! - **not found**: a missing secret or version is [`Error::NotFound`],
//!   naming the store;
//! - **overwrite** (`versions`): a second write wins, and is version 2 with
//!   version 1 still readable and `history` listing both, oldest first;
//! - **read labels** (`read_labels`): after two writes `current` reads
//!   version 2 and `previous` version 1, and `history` labels them so;
//! - **staging** (`staging`): a staged write is `pending` (read by that
//!   label, listed as pending, labelled in `history`) while `current` still
//!   reads the version before;
//! - **moving labels** (`move_labels`): `set_label(current, 1)` rolls back,
//!   `set_label(current, 2)` goes forward again, a staged version is promoted,
//!   a missing version is [`Error::NotFound`];
//! - **metadata** (`metadata`): entries given with two writes are merged
//!   and shown by `list`;
//! - **list by prefix** (`list`): a plain string prefix, exactly the live
//!   names under it;
//! - **delete and undelete** (`soft_delete`): soft delete hides (from `get`
//!   and `list`), undelete restores the same version; purge destroys, and
//!   the name can be written again;
//! - **unsupported**: every operation outside the capabilities is
//!   [`Error::Unsupported`] (or [`Error::ReadOnly`] for writes to a read-only
//!   store), never a panic or a pretended success; this includes a `put` with
//!   an expected version, metadata or `stage` that the store cannot honour;
//! - **check-and-set** (`check_and_set`): an expected version that is not
//!   current is a [`Error::Conflict`] with both versions, and of two writers
//!   racing with the same expected version exactly one wins;
//! - **no value in any error**: errors provoked around a canary value never
//!   show it, in `Display`, `Debug` or their sources;
//! - **health**: the store answers and accepts the fixture's credentials.
//!
//! Checks panic with a message naming the broken rule, like `assert!`.

use std::collections::BTreeSet;
use std::error::Error as _;
use std::fmt;
use std::sync::Barrier;
use std::thread;

use tresor_core::{
    DEFAULT_MAX_VALUE_LEN, Error, PutOptions, Result, SecretName, SecretValue, Selector, Store,
};

/// Makes the stores the checks run against.
pub trait Fixture {
    /// A new store holding exactly `seed`, each secret written once, and
    /// nothing else a check could see. Called once per check.
    /// A writable store can seed itself with [`seed_by_put`]; a read-only
    /// one is built around the values.
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store>;

    /// A second, independent handle on the store [`Fixture::store`] returned
    /// last (another connection, client or process view), for the race of
    /// two writers. `None`, the default, skips that check.
    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        None
    }
}

/// Writes each seed secret once, for fixtures of writable stores.
///
/// # Panics
///
/// If a write fails.
pub fn seed_by_put(store: &mut dyn Store, seed: &[(SecretName, SecretValue)]) {
    for (name, value) in seed {
        if let Err(e) = store.put(name, value, &PutOptions::default()) {
            panic!("{}: seeding '{name}' failed: {e}", store.name());
        }
    }
}

/// One check of the suite.
pub type Check = fn(&mut dyn Fixture);

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("text_round_trip", text_round_trip),
    ("binary_round_trip", binary_round_trip),
    ("not_found", not_found),
    ("overwrite", overwrite),
    ("read_labels", read_labels),
    ("staging", staging),
    ("move_labels", move_labels),
    ("metadata", metadata),
    ("list_by_prefix", list_by_prefix),
    ("delete_and_undelete", delete_and_undelete),
    ("unsupported_operations", unsupported_operations),
    ("check_and_set", check_and_set),
    ("check_and_set_race", check_and_set_race),
    ("no_value_in_errors", no_value_in_errors),
    ("health", health),
];

/// Runs every check in turn (one test for all; prefer
/// [`conformance_tests!`](crate::conformance_tests) for one test each).
pub fn run_all(fixture: &mut dyn Fixture) {
    for (_, check) in CHECKS {
        check(fixture);
    }
}

/// Writes one `#[test]` per conformance check, each with a fixture made by
/// `$fixture` (an expression evaluated anew for every test).
///
/// ```ignore
/// mod vault {
///     tresor_stores::conformance_tests!(super::VaultFixture::new());
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::conformance_tests!(@each $fixture;
            text_round_trip binary_round_trip not_found overwrite read_labels staging
            move_labels metadata list_by_prefix delete_and_undelete unsupported_operations check_and_set check_and_set_race
            no_value_in_errors health);
    };
    (@each $fixture:expr; $($check:ident)*) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$check(&mut $fixture);
            }
        )*
    };
}

/// A UTF-8 value with multi-byte characters.
const TEXT: &str = "héllo wörld ✓ — conformance text";

/// Every byte value once, NUL and invalid UTF-8 included.
fn binary() -> Vec<u8> {
    (0..=255u8).rev().collect()
}

/// A value no message may ever contain.
const CANARY: &str = "tresor-canary-5e1f0c9a7d";

mod basics;
mod capabilities;
mod writes;

pub use basics::{
    binary_round_trip, delete_and_undelete, list_by_prefix, not_found, overwrite, text_round_trip,
};
pub use capabilities::{metadata, move_labels, read_labels, staging, unsupported_operations};
pub use writes::{check_and_set, check_and_set_race, health, no_value_in_errors};

// ---------------------------------------------------------------- helpers

fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("the suite's names follow the naming rule")
}

fn value(bytes: &[u8]) -> SecretValue {
    SecretValue::copy_from(bytes)
}

#[track_caller]
fn read(store: &mut dyn Store, n: &SecretName, selector: Selector) -> tresor_core::Secret {
    store
        .get(n, selector)
        .unwrap_or_else(|e| panic!("{}: get '{n}' {selector}: {e}", store.name()))
}

fn names(store: &mut dyn Store, prefix: &str) -> BTreeSet<SecretName> {
    let listed = store
        .list(prefix)
        .unwrap_or_else(|e| panic!("{}: list({prefix:?}): {e}", store.name()));
    let count = listed.len();
    let set: BTreeSet<_> = listed.into_iter().map(|i| i.name).collect();
    assert_eq!(set.len(), count, "{}: a name listed twice", store.name());
    set
}

/// The error `result` must be, of one of `kinds`.
#[track_caller]
fn expect_err<T: fmt::Debug>(result: Result<T>, kinds: &[&str], what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an error ({kinds:?}), got Ok({v:?})"),
        Err(e) => {
            assert!(
                kinds.contains(&e.kind()),
                "{what}: expected {kinds:?}, got {}: {e}",
                e.kind()
            );
            e
        }
    }
}

#[track_caller]
fn names_store(store: &dyn Store, e: &Error) {
    assert!(
        e.to_string().contains(store.name()),
        "the message does not name the store {:?}: {e}",
        store.name()
    );
}

#[track_caller]
fn conflict(store: &dyn Store, result: Result<u64>, expected: u64, found: u64) {
    match result {
        Err(Error::Conflict {
            expected: e,
            found: f,
            ..
        }) => assert_eq!(
            (e, f),
            (expected, found),
            "{}: Conflict names the expected and found versions",
            store.name()
        ),
        other => panic!(
            "{}: expected a conflict (expected {expected}, found {found}), got {other:?}",
            store.name()
        ),
    }
}

#[cfg(test)]
mod tests;
