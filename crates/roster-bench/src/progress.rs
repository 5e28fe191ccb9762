//! What `roster bench` shows while it runs, on standard error.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal; one line per stage otherwise.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
    terminal: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar, terminal }
    }

    pub(crate) fn stage(&self, name: &str, length: u64) {
        if !self.terminal {
            eprintln!("roster bench: {name}");
        }
        self.bar.set_prefix(name.to_string());
        self.bar.set_length(length);
        self.bar.set_position(0);
        self.bar.set_message("");
    }

    pub(crate) fn set(&self, position: u64, length: u64) {
        self.bar.set_length(length);
        self.bar.set_position(position);
    }

    pub(crate) fn advance(&self, by: u64) {
        self.bar.inc(by);
    }

    pub(crate) fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    pub(crate) fn note(&self, message: &str) {
        if self.terminal {
            self.bar.println(message);
        } else {
            eprintln!("roster bench: {message}");
        }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
