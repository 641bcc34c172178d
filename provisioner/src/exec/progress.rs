//! Progress display: one indicatif bar per host under a shared `MultiProgress`, so several
//! hosts deploying in parallel each keep their own line instead of interleaving output.
//! When stderr is not a terminal (CI logs), indicatif draws nothing and the finished
//! lines are printed instead, so logs stay readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The set of bars for one provisioner run.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    // Without a terminal nothing is drawn, so milestones are printed as plain lines.
    plain: bool,
}

impl Progress {
    /// Bars on stderr (drawn only when it is a terminal).
    pub fn stderr() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            plain: !std::io::stderr().is_terminal(),
        }
    }

    /// Draws nothing and prints nothing (tests, `--quiet`).
    pub fn hidden() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            plain: false,
        }
    }

    /// Runs `f` with the bars taken off the terminal, for a question asked there.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// A bar for one host, starting as a spinner.
    pub fn host(&self, host: &str) -> HostProgress {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        bar.set_prefix(host.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        HostProgress {
            bar,
            multi: self.multi.clone(),
            host: host.to_owned(),
            plain: self.plain,
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:>12.bold} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {prefix:>12.bold} {msg} {bytes} {binary_bytes_per_sec} [{bar:30}] {percent}%",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// One host's line.
#[derive(Clone)]
pub struct HostProgress {
    bar: ProgressBar,
    multi: MultiProgress,
    host: String,
    plain: bool,
}

impl HostProgress {
    /// What the host is doing now (spinner mode).
    pub fn step(&self, message: impl Into<String>) {
        self.bar.set_style(spinner_style());
        self.bar.set_message(message.into());
    }

    /// Switches to a byte counter for a transfer of `total` bytes (an estimate is fine:
    /// an export's size is only known approximately up front).
    pub fn start_bytes(&self, message: impl Into<String>, total: u64) {
        self.bar.set_style(bytes_style());
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(message.into());
    }

    pub fn add_bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn bytes_done(&self) -> u64 {
        self.bar.position()
    }

    /// A line that stays above the bars (and is printed in plain mode).
    pub fn note(&self, message: impl AsRef<str>) {
        let line = format!("{:>12} {}", self.host, message.as_ref());
        if self.plain {
            eprintln!("{line}");
        } else {
            // println on a hidden MultiProgress is a no-op, which is what tests want.
            let _ = self.multi.println(line);
        }
    }

    pub fn finish(&self, message: impl Into<String>) {
        let message = message.into();
        self.note(&message);
        self.bar.set_style(spinner_style());
        self.bar.finish_with_message(message);
    }
}
