//! CLI layer, `top`: the view — the board drawn with ratatui: a title line, a table of the
//! web hosts, a table of Redis, and why each source that is down is down. Pure drawing into
//! a frame; the terminal it goes to is `top`'s business.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::board::{Board, Counters, Health, Source};
use crate::metrics::{RedisRates, WebRates};

const WEB_COLUMNS: [(&str, u16); 10] = [
    ("host", 10),
    ("address", 15),
    ("state", 7),
    ("req/s", 9),
    ("429/s", 9),
    ("decisions/s", 11),
    ("fallbacks/s", 11),
    ("near limit/s", 12),
    ("p95", 10),
    ("limiter p95", 11),
];

const REDIS_COLUMNS: [(&str, u16); 6] = [
    ("host", 10),
    ("address", 15),
    ("state", 7),
    ("ops/s", 10),
    ("memory", 24),
    ("clients", 7),
];

pub fn draw(frame: &mut Frame, board: &Board) {
    let down: Vec<Line> = board
        .web
        .iter()
        .map(|source| &source.health)
        .filter_map(down_line)
        .chain(down_line(&board.redis.health))
        .collect();
    let [title, web, redis, problems] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(board.web.len() as u16 + 3),
        Constraint::Length(4),
        Constraint::Min(0),
    ])
    .areas(frame.area());
    frame.render_widget(
        Line::from(format!(
            "clusterlab top: {}  (each web host's /metrics and Redis INFO, every second; q quits)",
            board.cluster
        ))
        .bold(),
        title,
    );
    frame.render_widget(
        table(
            &WEB_COLUMNS,
            board.web.iter().map(|source| row(source, web_cells)),
        )
        .block(Block::bordered().title(" web hosts ")),
        web,
    );
    frame.render_widget(
        table(&REDIS_COLUMNS, [row(&board.redis, redis_cells)].into_iter())
            .block(Block::bordered().title(" redis ")),
        redis,
    );
    if !down.is_empty() {
        frame.render_widget(
            Paragraph::new(down)
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(" down ")),
            problems,
        );
    }
}

fn table<'a>(columns: &[(&'a str, u16)], rows: impl Iterator<Item = Row<'a>>) -> Table<'a> {
    Table::new(
        rows,
        columns.iter().map(|(_, width)| Constraint::Length(*width)),
    )
    .header(Row::new(columns.iter().map(|(name, _)| *name)).style(Style::new().bold()))
}

/// A source's row: its name, address and state, then its rates (blank until there are).
fn row<'a, T: Counters>(source: &Source<T>, cells: fn(&T::Rates) -> Vec<String>) -> Row<'a> {
    let (state, rates) = match &source.health {
        Health::Waiting => ("waiting", None),
        Health::Up(rates) => ("up", rates.as_ref()),
        Health::Down(_) => ("down", None),
    };
    let mut line = vec![
        source.name.clone(),
        source.address.clone(),
        state.to_owned(),
    ];
    line.extend(rates.map(cells).unwrap_or_default());
    let row = Row::new(line);
    match source.health {
        Health::Down(_) => row.red(),
        _ => row,
    }
}

fn web_cells(rates: &WebRates) -> Vec<String> {
    vec![
        per_second(rates.requests),
        per_second(rates.too_many),
        per_second(rates.decisions),
        per_second(rates.without_redis),
        per_second(rates.near_limit),
        milliseconds(rates.latency_p95),
        milliseconds(rates.decision_p95),
    ]
}

fn redis_cells(rates: &RedisRates) -> Vec<String> {
    let memory = if rates.maxmemory == 0 {
        bytes(rates.used_memory)
    } else {
        format!("{} of {}", bytes(rates.used_memory), bytes(rates.maxmemory))
    };
    vec![
        per_second(rates.ops),
        memory,
        rates.connected_clients.to_string(),
    ]
}

/// Why a source is down; the reason names its host.
fn down_line<'a, R>(health: &Health<R>) -> Option<Line<'a>> {
    match health {
        Health::Down(why) => Some(Line::from(why.clone())),
        _ => None,
    }
}

fn per_second(rate: f64) -> String {
    format!("{rate:.1}")
}

/// Seconds as milliseconds; `-` when nothing was timed.
fn milliseconds(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.1} ms", s * 1000.0))
}

fn bytes(count: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if count as f64 >= MIB {
        format!("{:.1} MiB", count as f64 / MIB)
    } else {
        format!("{:.1} KiB", count as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::metrics::web::Histogram;
    use crate::metrics::{RedisInfo, WebMetrics};

    fn screen(board: &Board) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(120, 14)).unwrap();
        terminal.draw(|frame| draw(frame, board)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    /// The cells of the line that shows `name`, the table's borders left out.
    fn cells(screen: &[String], name: &str) -> Vec<String> {
        let line = screen
            .iter()
            .find(|line| line.trim_start_matches(['│', ' ']).starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{}", screen.join("\n")));
        line.split_whitespace()
            .map(|cell| cell.trim_matches('│'))
            .filter(|cell| !cell.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn web(requests: f64, too_many: f64) -> WebMetrics {
        WebMetrics {
            requests,
            too_many,
            latency: Histogram::from_buckets(vec![(0.002, requests), (f64::INFINITY, requests)]),
            ..WebMetrics::default()
        }
    }

    fn redis(commands: u64) -> RedisInfo {
        RedisInfo {
            total_commands_processed: commands,
            instantaneous_ops_per_sec: 0,
            used_memory: 3 << 20,
            maxmemory: 256 << 20,
            connected_clients: 4,
        }
    }

    #[test]
    fn shows_each_source_with_its_rates_and_why_one_is_down() {
        let start = Instant::now();
        let second = start + Duration::from_secs(2);
        let mut board = Board {
            cluster: "demo".into(),
            web: vec![
                Source::new("web1", "10.0.0.11"),
                Source::new("web2", "10.0.0.12"),
            ],
            redis: Source::new("redis", "10.0.0.20"),
        };
        board.web[0].record(start, Ok(web(100.0, 0.0)));
        board.web[0].record(second, Ok(web(140.0, 6.0)));
        board.web[1].record(second, Err("web2: GET /metrics: connection refused".into()));
        board.redis.record(start, Ok(redis(1_000)));
        board.redis.record(second, Ok(redis(1_600)));

        let screen = screen(&board);
        assert!(
            screen[0].starts_with("clusterlab top: demo"),
            "{}",
            screen[0]
        );
        assert_eq!(
            cells(&screen, "web1"),
            [
                "web1",
                "10.0.0.11",
                "up",
                "20.0",
                "3.0",
                "0.0",
                "0.0",
                "0.0",
                "1.9",
                "ms",
                "-"
            ]
        );
        assert_eq!(cells(&screen, "web2"), ["web2", "10.0.0.12", "down"]);
        assert_eq!(
            cells(&screen, "redis"),
            [
                "redis",
                "10.0.0.20",
                "up",
                "300.0",
                "3.0",
                "MiB",
                "of",
                "256.0",
                "MiB",
                "4"
            ]
        );
        assert!(
            screen
                .iter()
                .any(|line| line.contains("│web2: GET /metrics: connection refused")),
            "{}",
            screen.join("\n")
        );
    }

    #[test]
    fn a_source_not_read_yet_is_waiting() {
        let board = Board {
            cluster: "demo".into(),
            web: vec![Source::new("web1", "10.0.0.11")],
            redis: Source::new("redis", "10.0.0.20"),
        };
        let screen = screen(&board);
        assert_eq!(cells(&screen, "web1"), ["web1", "10.0.0.11", "waiting"]);
        assert_eq!(cells(&screen, "redis"), ["redis", "10.0.0.20", "waiting"]);
    }
}
