//! The progress display of `enid plan`, `enid apply` and `enid adopt`: a spinner for each phase
//! of the run (reading sources, reading targets, planning) with its elapsed time, and a bar while
//! an apply sends its operations (done of total, failed, operations per second, time left).
//!
//! It is the CLI's [`RunHook`]: the engine says where the run is, this only draws. It draws on
//! stderr, and only when stderr is a terminal and the output is text (`--json` never has one);
//! stdout is the same with or without it. A command clears it before it writes what the run
//! found, so the two never interleave, and log lines are written around it ([`LogLines`]). It
//! shows counts and phase names only: never a person's name, civic number or password.

use crate::engine::{Phase, Progress, RunHook};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The spinner or bar on the screen now, if any. One place, not one per [`Display`], because
/// the log writer ([`LogLines`]) must find it to write around it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How often a spinner turns and its elapsed time moves while the engine is busy.
const TICK: Duration = Duration::from_millis(120);

/// The progress display of one command. Dropping it clears what it shows.
#[derive(Debug)]
pub(super) struct Display(());

impl Display {
    /// The display for a command, when it should have one: stderr is a terminal and the command
    /// writes text (not `--json`).
    pub(super) fn for_command(json: bool) -> Option<Arc<Display>> {
        (!json && std::io::stderr().is_terminal()).then(|| Arc::new(Display(())))
    }

    /// The display as the engine's hook.
    pub(super) fn hook(display: &Option<Arc<Display>>) -> Option<Arc<dyn RunHook>> {
        display.as_ref().map(|d| Arc::clone(d) as Arc<dyn RunHook>)
    }

    /// Removes what is shown, before the command writes its own output.
    pub(super) fn clear(&self) {
        if let Some(bar) = shown().take() {
            bar.finish_and_clear();
        }
    }

    /// Shows `bar` (made hidden) in place of what was shown: the old one is cleared first, since
    /// each knows only the line it drew itself.
    fn show(&self, bar: ProgressBar) {
        let mut shown = shown();
        if let Some(old) = shown.take() {
            old.finish_and_clear();
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
        // Drawn now, however short the phase: the ticks come later.
        bar.tick();
        bar.enable_steady_tick(TICK);
        *shown = Some(bar);
    }
}

impl Drop for Display {
    /// A command that ends with an error leaves no spinner behind the message `main` prints.
    fn drop(&mut self) {
        self.clear();
    }
}

impl RunHook for Display {
    fn phase(&self, phase: Phase) {
        let bar = match phase {
            Phase::ReadingSources => spinner("reading sources".to_string()),
            Phase::ReadingTargets { records } => {
                spinner(format!("reading targets ({} records read)", crate::engine::thousands(records)))
            }
            Phase::Planning { accounts } => {
                spinner(format!("planning ({} accounts read)", crate::engine::thousands(accounts)))
            }
            Phase::Applying { total } => {
                let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
                bar.set_style(style(
                    // `per_sec:1`: one decimal ("12.5/s"); the bar takes the width left.
                    "{spinner} applying [{wide_bar}] {pos}/{len} ops, {msg}, {per_sec:1}, ETA {eta} ({elapsed})",
                ));
                bar.set_message("0 failed");
                bar
            }
        };
        self.show(bar);
    }

    fn progress(&self, progress: &Progress) {
        if let Some(bar) = shown().as_ref() {
            bar.set_position((progress.ok + progress.failed + progress.not_sent) as u64);
            let mut message = format!("{} failed", progress.failed);
            if progress.not_sent > 0 {
                message.push_str(&format!(", {} not sent", progress.not_sent));
            }
            bar.set_message(message);
        }
    }
}

/// A spinner for a phase, with its name and how long it has taken.
fn spinner(name: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(style("{spinner} {msg} ({elapsed})"));
    bar.set_message(name);
    bar
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; one that did not parse would show the default style, never fail.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

fn shown() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The CLI's log writer: stderr, with what the display shows taken away while a line is written
/// and drawn again below it, so a warning during an apply is a line of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLines;

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match shown().as_ref() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
