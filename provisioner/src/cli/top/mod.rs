//! CLI layer: `provisioner top` — a live view of the running cluster. Per web host, from
//! its `/metrics`: requests/s, 429s/s, limiter decisions/s and those made without Redis
//! (fallbacks), near-limit admissions/s, p95 latency of requests and of limiter decisions;
//! for Redis, from `INFO`: ops/s, memory, clients. Every source is read each second,
//! concurrently, through its host's SSH session; one that fails shows as down and the view
//! goes on. `q` or Ctrl-C quits, and the terminal is restored however the view ends.
//!
//! # Layout
//! - `board`: each source's latest state and rates (pure).
//! - `view`: the board drawn with ratatui (pure).
//! - `poll`: the pollers, one task per source (the I/O).

mod board;
mod poll;
mod view;

use std::io::IsTerminal;
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use crate::spec::{FileCheck, Role};

use super::context::{self, Project};
use super::{load, Cli, CliError};
use board::{Board, Reading, Source};
use poll::Place;

/// How long the view waits for a key before drawing again.
const REDRAW: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _args: &Args) -> Result<(), CliError> {
    let project = Project::new(cli);
    let cluster = load(cli, FileCheck::RequireFiles)?;
    if !std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "`provisioner top` draws on a terminal and stdout is not one; \
             `provisioner status` prints the limiter's counts once"
                .into(),
        ));
    }
    let password = cluster.secrets.redis_password.resolve(&project.spec_dir)?;
    let targets = context::targets(&cluster, &project);
    let place = |host: &crate::spec::Host| Place {
        target: targets[&host.name].clone(),
        address: host.ip.to_string(),
    };
    let web: Vec<_> = cluster.hosts_with(Role::Web).collect();
    let runtime = context::runtime()?;
    // The primary when top starts: its INFO is where the decisions run.
    let redis = runtime.block_on(context::redis_primary(&cluster, &targets, &password))?;
    let mut board = Board {
        cluster: cluster.name.clone(),
        web: web
            .iter()
            .map(|host| Source::new(&host.name, &host.ip.to_string()))
            .collect(),
        redis: Source::new(&redis.name, &redis.ip.to_string()),
    };

    let (sender, mut readings) = mpsc::unbounded_channel();
    let pollers = poll::start(
        &runtime,
        web.into_iter().map(place).collect(),
        place(redis),
        password,
        context::inspect_retry(),
        sender,
    );
    let shown = show(&mut board, &mut readings);
    runtime.block_on(pollers.stop());
    shown
}

/// Leaves raw mode and the alternate screen when dropped: on quitting, on an error, and
/// when unwinding (ratatui's panic hook restores the terminal before a panic is printed).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Draws the board until `q` or Ctrl-C, taking in the pollers' readings as they come.
fn show(
    board: &mut Board,
    readings: &mut mpsc::UnboundedReceiver<Reading>,
) -> Result<(), CliError> {
    let terminal_error = |operation: &str| {
        let operation = operation.to_owned();
        move |source| CliError::Io { operation, source }
    };
    let mut terminal = ratatui::try_init().map_err(terminal_error("set up the terminal"))?;
    let _restore = Restore;
    loop {
        while let Ok(reading) = readings.try_recv() {
            board.record(reading);
        }
        terminal
            .draw(|frame| view::draw(frame, board))
            .map_err(terminal_error("draw on the terminal"))?;
        if event::poll(REDRAW).map_err(terminal_error("read the keyboard"))? {
            if let Event::Key(key) = event::read().map_err(terminal_error("read the keyboard"))? {
                if quits(key) {
                    return Ok(());
                }
            }
        }
    }
}

/// `q`, or Ctrl-C: in raw mode Ctrl-C is a key like any other, not a signal.
fn quits(key: KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q') => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_and_ctrl_c_quit_and_nothing_else_does() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(quits(key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(key(KeyCode::Esc, KeyModifiers::NONE)));
    }
}
