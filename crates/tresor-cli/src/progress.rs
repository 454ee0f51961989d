//! Progress bars for long work (rekey, verify, encrypt and decrypt of
//! large files): the library reports through [`tresor::progress::Progress`],
//! this draws it with indicatif on stderr, and only on a terminal: nothing
//! on a pipe, with `--quiet` or with `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tresor::progress::{Progress, Unit};

/// Work shorter than this never shows a bar (a bar that flashes for a
/// blink helps nobody).
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// The bar of the current stage: hidden until the stage has run for
/// [`SHOW_AFTER`].
struct Shown {
    bar: ProgressBar,
    started: std::time::Instant,
    drawn: bool,
}

/// A progress bar on stderr, or nothing.
pub struct Bar {
    on: bool,
    bar: Mutex<Option<Shown>>,
}

impl Bar {
    /// A bar when stderr is a terminal and neither `--quiet` nor `--json`
    /// was given; otherwise one that draws nothing.
    pub fn new(quiet: bool, json: bool) -> Self {
        Self {
            on: !quiet && !json && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Option<Shown>)) {
        if self.on {
            f(&mut self.bar.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: Option<u64>, unit: Unit) {
        self.with(|slot| {
            let template = match (total, unit) {
                (Some(_), Unit::Bytes) => {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
                }
                (Some(_), Unit::Records) => "{msg} [{bar:30}] {pos}/{len} records, {eta} left",
                (None, Unit::Bytes) => "{msg} {spinner} {bytes} {bytes_per_sec}",
                (None, Unit::Records) => "{msg} {spinner} {pos} records",
            };
            let style = ProgressStyle::with_template(template)
                .expect("the templates are valid")
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
            bar.set_style(style);
            bar.set_message(what.to_string());
            *slot = Some(Shown {
                bar,
                started: std::time::Instant::now(),
                drawn: false,
            });
        });
    }

    fn update(&self, done: u64) {
        self.with(|slot| {
            if let Some(s) = slot {
                if !s.drawn && s.started.elapsed() >= SHOW_AFTER {
                    s.bar.set_draw_target(ProgressDrawTarget::stderr());
                    s.drawn = true;
                }
                s.bar.set_position(done);
            }
        });
    }

    fn finish(&self) {
        self.with(|slot| {
            if let Some(s) = slot.take() {
                s.bar.finish_and_clear();
            }
        });
    }
}
