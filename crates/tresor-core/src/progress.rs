//! Progress of long work (re-encrypting a vault, sealing a large file,
//! verifying every record), reported to whoever drew it: the library
//! calls a [`Progress`], a front end (the CLI's bar on a terminal) draws
//! it. Nothing here knows about terminals.

/// Receives progress reports. Every method has an empty default, so an
/// implementation overrides only what it draws; [`Silent`] draws nothing.
/// Calls come from one thread at a time, though not always the same one.
pub trait Progress: Sync {
    /// A stage of work begins: `what` it is (`re-encrypting records`), and
    /// how many `unit`s (`records`, `bytes`) it holds, if known.
    fn start(&self, what: &str, total: Option<u64>, unit: Unit) {
        let _ = (what, total, unit);
    }

    /// `done` units of the current stage are finished (a running total).
    fn update(&self, done: u64) {
        let _ = done;
    }

    /// The current stage is over (or failed).
    fn finish(&self) {}
}

/// What a stage counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Records of the vault.
    Records,
    /// Bytes of a file.
    Bytes,
}

/// Reports nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {}

/// Ends a stage when dropped, so a stage that fails part-way is finished
/// too.
pub struct Stage<'a>(&'a dyn Progress);

impl<'a> Stage<'a> {
    /// Starts a stage on `progress`.
    pub fn start(progress: &'a dyn Progress, what: &str, total: Option<u64>, unit: Unit) -> Self {
        progress.start(what, total, unit);
        Self(progress)
    }

    /// Reports `done` units finished.
    pub fn update(&self, done: u64) {
        self.0.update(done);
    }
}

impl Drop for Stage<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn start(&self, what: &str, total: Option<u64>, _: Unit) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {what} {total:?}"));
        }
        fn update(&self, done: u64) {
            self.0.lock().unwrap().push(format!("{done}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    #[test]
    fn a_stage_finishes_when_dropped_even_early() {
        fn fails_part_way(log: &Log) -> Result<(), ()> {
            let stage = Stage::start(log, "work", Some(3), Unit::Records);
            stage.update(1);
            Err(())
        }
        let log = Log::default();
        assert!(fails_part_way(&log).is_err());
        assert_eq!(
            *log.0.lock().unwrap(),
            ["start work Some(3)", "1", "finish"]
        );
        // Silent takes every call.
        let s = Stage::start(&Silent, "x", None, Unit::Bytes);
        s.update(5);
    }
}
