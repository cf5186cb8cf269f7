//! Progress reporting for long operations: every stage is logged through tracing (so non-TTY runs such
//! as CI keep a record with `-v`) and handed to a display, if one is attached — the CLI attaches a
//! terminal bar; a library user may attach their own or none.

use std::sync::Arc;

/// Where progress is shown. Implemented by the CLI's terminal bar; calls must return at once.
pub trait Display: Send + Sync {
    /// A stage of `total` steps begins (0: open-ended).
    fn stage(&self, message: &str, total: u64);
    /// One step of the current stage is done.
    fn inc(&self);
    /// The current stage's message changes (e.g. a line of a build's output).
    fn note(&self, message: &str);
    /// The work is over: clear what is shown.
    fn finish(&self);
    /// A stage counting `total` bytes begins (0: unknown), such as a download.
    fn stage_bytes(&self, message: &str, total: u64) {
        self.stage(message, total);
    }
    /// `done` steps (or bytes) of the current stage are done.
    fn position(&self, _done: u64) {}
}

/// Progress of long work, shown on an optional display. Cheap to clone; clones share the display.
#[derive(Clone, Default)]
pub struct Progress {
    display: Option<Arc<dyn Display>>,
}

impl Progress {
    /// Progress shown on `display` as well as logged.
    pub fn on(display: Arc<dyn Display>) -> Progress {
        Progress {
            display: Some(display),
        }
    }

    /// Starts a stage of `total` steps (0: an open-ended spinner).
    pub fn stage(&self, message: &str, total: u64) {
        tracing::info!("{message}");
        if let Some(d) = &self.display {
            d.stage(message, total);
        }
    }

    /// One step of the current stage done.
    pub fn inc(&self) {
        if let Some(d) = &self.display {
            d.inc();
        }
    }

    /// Starts a stage counting `total` bytes (0: unknown), such as a download.
    pub fn stage_bytes(&self, message: &str, total: u64) {
        match total {
            0 => tracing::info!("{message}"),
            n => tracing::info!("{message} ({n} bytes)"),
        }
        if let Some(d) = &self.display {
            d.stage_bytes(message, total);
        }
    }

    /// `done` steps (or bytes) of the current stage done.
    pub fn position(&self, done: u64) {
        if let Some(d) = &self.display {
            d.position(done);
        }
    }

    /// Replaces the message of the current stage (e.g. a line of a build's output).
    pub fn note(&self, message: &str) {
        tracing::debug!("{message}");
        if let Some(d) = &self.display {
            d.note(message);
        }
    }

    /// Removes what the display shows.
    pub fn finish(&self) {
        if let Some(d) = &self.display {
            d.finish();
        }
    }
}
