//! The one renderer of the seam's [`Progress`]: a bar on stderr while a state loads, a
//! check runs or a conversion writes; nothing when stderr is not a terminal or the
//! command prints JSON.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use keeperkit_storage::Progress;

/// Set once per run: the command prints JSON, so no bar is drawn.
static HIDDEN: AtomicBool = AtomicBool::new(false);

/// A bar is on the terminal: one at a time (a second load beside it stays silent).
static SHOWING: AtomicBool = AtomicBool::new(false);

/// Hides every bar of this run (`--json`).
pub fn hide(hidden: bool) {
    HIDDEN.store(hidden, Ordering::Relaxed);
}

/// A progress display on stderr: a spinner naming the phase until a total is known,
/// then a bar of bytes (loads, checks) or of znodes (conversions). Hidden unless
/// stderr is a terminal, the output is not JSON and no other bar is showing.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// Starts a display with `label` (what is being done).
    pub fn new(label: &str) -> Bar {
        if HIDDEN.load(Ordering::Relaxed)
            || !std::io::stderr().is_terminal()
            || SHOWING.swap(true, Ordering::Relaxed)
        {
            return Bar { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar { bar: Some(bar) }
    }

    /// Removes the display.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            SHOWING.store(false, Ordering::Relaxed);
        }
    }
}

impl Bar {
    fn set_total_with(&self, total: u64, counts: &str) {
        if let Some(b) = &self.bar {
            if b.length().is_none() {
                b.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{spinner}} {{msg:40!}} [{{bar:30}}] {counts} {{elapsed}}"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            }
            b.set_length(total);
        }
    }
}

impl Progress for Bar {
    fn set_total(&mut self, total: u64) {
        self.set_total_with(total, "{bytes}/{total_bytes}");
    }

    fn set_node_total(&mut self, total: u64) {
        self.set_total_with(total, "{human_pos}/{human_len} znodes");
    }

    fn advance(&mut self, delta: u64) {
        if let Some(b) = &self.bar {
            b.inc(delta);
        }
    }

    fn phase(&mut self, label: &str) {
        if let Some(b) = &self.bar {
            b.set_message(label.rsplit('/').next().unwrap_or(label).to_string());
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
