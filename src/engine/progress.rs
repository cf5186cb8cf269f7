//! Progress reporting for long operations: a bar on a terminal, nothing otherwise; every stage is also
//! logged through tracing so non-TTY runs (CI) keep a record with `-v`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden. Cheap to clone; clones share the bar.
#[derive(Clone, Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar drawn on stderr when `visible` (a TTY and no `--json`), otherwise silent.
    pub fn new(visible: bool) -> Progress {
        if !visible {
            return Progress::default();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// Starts a stage of `total` steps (0: an open-ended spinner).
    pub fn stage(&self, message: &str, total: u64) {
        tracing::info!("{message}");
        if let Some(bar) = &self.bar {
            let template = if total == 0 {
                "{spinner} {msg} {elapsed}"
            } else {
                "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(message.to_string());
        }
    }

    /// One step of the current stage done.
    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Replaces the message of the current stage (e.g. a line of a build's output).
    pub fn note(&self, message: &str) {
        tracing::debug!("{message}");
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
