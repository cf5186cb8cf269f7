//! The terminal's progress display: one indicatif bar (or spinner) on stderr.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::progress::{Display, Progress};

/// How often a spinner turns.
const TICK: Duration = Duration::from_millis(120);

/// A bar drawn on stderr from its first stage on (before that it has no style to draw with).
struct Bar(ProgressBar, std::sync::Once);

impl Display for Bar {
    fn stage(&self, message: &str, total: u64) {
        let template = if total == 0 {
            "{spinner} {msg} {elapsed}"
        } else {
            "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}"
        };
        self.start(message, total, template);
    }

    fn stage_bytes(&self, message: &str, total: u64) {
        let template = if total == 0 {
            "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}"
        } else {
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
        };
        self.start(message, total, template);
    }

    fn position(&self, done: u64) {
        self.0.set_position(done);
    }

    fn inc(&self) {
        self.0.inc(1);
    }

    fn note(&self, message: &str) {
        self.0.set_message(message.to_string());
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Bar {
    /// Starts a stage drawn with `template`.
    fn start(&self, message: &str, total: u64, template: &str) {
        // A bar finished by an earlier stage starts again, its clock and position at zero (first, so
        // no tick draws the new length beside the old position).
        self.0.reset();
        self.0.set_length(total);
        self.0.set_message(message.to_string());
        self.0.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.1
            .call_once(|| self.0.set_draw_target(ProgressDrawTarget::stderr()));
        self.0.enable_steady_tick(TICK);
    }
}

/// Progress with a bar on stderr when `visible` (a terminal, no `--json`), otherwise only logged.
pub fn progress(visible: bool) -> Progress {
    if !visible {
        return Progress::default();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    Progress::on(std::sync::Arc::new(Bar(bar, std::sync::Once::new())))
}
