//! Progress bars on a terminal, nothing when stderr is piped.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use keeperkit_storage::zookeeper::Progress;

/// A progress bar on stderr that only shows on a terminal.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar for loading a state; hidden unless stderr is a terminal.
    pub fn for_load() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:40!} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar { bar: Some(bar) }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn set_total(&mut self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
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

/// A spinner on stderr for work whose size is not known ahead (a check), only on a
/// terminal.
#[derive(Debug)]
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    /// Starts a spinner with `label`; nothing unless stderr is a terminal.
    pub fn new(label: &str) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner { bar: Some(bar) }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}
