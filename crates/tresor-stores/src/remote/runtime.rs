//! The private current-thread tokio runtime the SDK-based stores (aws,
//! azure) drive their async clients on, so their [`Store`](tresor_core::Store)
//! calls stay synchronous. A call made from inside another tokio runtime is
//! refused ([`InsideRuntime`]) instead of blocking, or panicking in, that
//! runtime's thread; dropping the store never blocks.

use std::future::Future;

use tresor_core::{Error, Result};

/// A store's own runtime.
pub(crate) struct Runtime(Option<tokio::runtime::Runtime>);

/// The caller is a task of another tokio runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InsideRuntime;

impl InsideRuntime {
    /// The error for `what` (e.g. `'a/b'`) on `store`.
    pub(crate) fn error(self, store: &str, what: &str) -> Error {
        Error::Unavailable {
            store: store.to_string(),
            reason: format!(
                "{what}: called from inside an async runtime; call the store from a \
                 blocking thread (e.g. tokio's spawn_blocking)"
            ),
        }
    }
}

impl Runtime {
    /// A current-thread runtime with time and I/O.
    pub(crate) fn new(store: &str) -> Result<Self> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|r| Self(Some(r)))
            .map_err(|e| Error::Unavailable {
                store: store.to_string(),
                reason: format!("cannot start the I/O runtime: {e}"),
            })
    }

    /// Runs `future` to completion, unless the caller is inside a runtime.
    pub(crate) fn block_on<F: Future>(
        &self,
        future: F,
    ) -> std::result::Result<F::Output, InsideRuntime> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(InsideRuntime);
        }
        Ok(self.runtime().block_on(future))
    }

    /// Enters the runtime (for constructors that spawn tasks).
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime().enter()
    }

    /// The runtime itself, unguarded (a caller's own `block_on`).
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for Runtime {
    /// Shuts the runtime down without blocking, so a store may be dropped
    /// anywhere, a task of another runtime included.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
