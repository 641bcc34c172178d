//! `chart.svg`: per client and policy, the answers per time step stacked by the web host
//! that gave them (admitted above, refused below), the admissions in each limit's trailing
//! window against that limit, and every stretch where the verdict found a problem. Drawn by
//! plotters.

use std::collections::BTreeSet;

use plotters::coord::types::{RangedCoordf64, RangedCoordu32};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::spec::Limiter;
use crate::verdict::{ClientReport, K6Run, LimitReport, ProblemKind, Sample, Verdict};

/// How the chart names the host of an answer without `X-Served-By`: parenthesised, so no
/// host name (letters, digits, `.`, `_`, `-`) can be mistaken for it.
pub const UNKNOWN_HOST: &str = "(unknown)";

#[derive(Debug, thiserror::Error)]
#[error("drawing the load test's chart: {0}")]
pub struct ChartError(String);

impl From<DrawingAreaErrorKind<std::io::Error>> for ChartError {
    fn from(error: DrawingAreaErrorKind<std::io::Error>) -> Self {
        ChartError(error.to_string())
    }
}

const WIDTH: u32 = 1200;
const HEADER: u32 = 44;
const PANEL: u32 = 540;
const ADMITTED: u32 = 290;
const LEGEND: u32 = 250;
/// Time steps the bars may have, in ms: the shortest that keeps a run within `MOST_BARS`.
const STEPS_MS: [i64; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];
const MOST_BARS: i64 = 120;

/// Per host, in the run's order: (admitted, refused) fill.
const HOST_COLOURS: [(RGBColor, RGBColor); 6] = [
    (RGBColor(31, 119, 180), RGBColor(174, 199, 232)),
    (RGBColor(44, 160, 44), RGBColor(152, 223, 138)),
    (RGBColor(148, 103, 189), RGBColor(197, 176, 213)),
    (RGBColor(140, 86, 75), RGBColor(196, 156, 148)),
    (RGBColor(23, 190, 207), RGBColor(158, 218, 229)),
    (RGBColor(188, 189, 34), RGBColor(219, 219, 141)),
];
const UNKNOWN_COLOURS: (RGBColor, RGBColor) = (RGBColor(127, 127, 127), RGBColor(199, 199, 199));
const BAD_ANSWER: RGBColor = RGBColor(0, 0, 0);
/// Per limit of a policy, in its order: the (trailing count, limit) lines.
const LIMIT_LINES: [(RGBColor, RGBColor); 3] = [
    (RGBColor(33, 33, 33), RGBColor(255, 127, 14)),
    (RGBColor(110, 110, 110), RGBColor(214, 39, 40)),
    (RGBColor(170, 170, 170), RGBColor(148, 103, 189)),
];
const PROBLEM: RGBColor = RGBColor(214, 39, 40);
const FONT: &str = "sans-serif";

/// Draws the chart of a judged run; `limiter` is the one the verdict judged it under.
pub fn render(run: &K6Run, limiter: &Limiter, verdict: &Verdict) -> Result<String, ChartError> {
    let timeline = Timeline::of(&run.samples);
    let hosts = Hosts::of(&run.samples);
    let panels: Vec<Panel> = verdict
        .clients
        .iter()
        .map(|report| Panel::new(report, run, limiter, &timeline, &hosts))
        .collect();
    let mut svg = String::new();
    {
        let height = HEADER + PANEL * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER);
        header.draw(&Text::new(
            headline(run, verdict, &timeline),
            (12, 12),
            (FONT, 20).into_font().style(FontStyle::Bold),
        ))?;
        for (area, panel) in body
            .split_evenly((panels.len().max(1), 1))
            .iter()
            .zip(&panels)
        {
            draw_panel(area, panel, &timeline, &hosts, verdict)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn headline(run: &K6Run, verdict: &Verdict, timeline: &Timeline) -> String {
    let started = chrono::DateTime::from_timestamp_micros(timeline.origin)
        .map_or_else(String::new, |t| t.format(" from %H:%M:%S UTC").to_string());
    format!(
        "{} requests{started}, {} limiter: verdict {}",
        run.samples.len(),
        verdict.algorithm.as_str(),
        if verdict.holds() { "PASS" } else { "FAIL" }
    )
}

/// The x axis: the run's time from its first request, cut into equal steps.
struct Timeline {
    origin: i64,
    /// µs per bar.
    step: i64,
    steps: usize,
}

impl Timeline {
    fn of(samples: &[Sample]) -> Self {
        let origin = samples.iter().map(|s| s.start).min().unwrap_or(0);
        let end = samples.iter().map(|s| s.end).max().unwrap_or(origin);
        let span = (end - origin).max(1);
        let step = STEPS_MS
            .iter()
            .map(|ms| ms * 1000)
            .find(|&step| ceil_div(span, step) <= MOST_BARS)
            .unwrap_or_else(|| ceil_div(ceil_div(span, MOST_BARS), 1_000_000) * 1_000_000);
        Timeline {
            origin,
            step,
            steps: ceil_div(span, step) as usize,
        }
    }

    /// The step a request's decision is drawn in: the middle of its interval's.
    fn index(&self, sample: &Sample) -> usize {
        let middle = sample.start + (sample.end - sample.start) / 2;
        (((middle - self.origin) / self.step) as usize).min(self.steps - 1)
    }

    fn end(&self) -> f64 {
        (self.step * self.steps as i64) as f64 / 1e6
    }

    /// "second", "5 s", "20 ms": what one bar counts.
    fn per(&self) -> String {
        match self.step {
            1_000_000 => "second".to_owned(),
            step if step % 1_000_000 == 0 => format!("{} s", step / 1_000_000),
            step => format!("{} ms", step / 1000),
        }
    }

    /// A problem's stretch widened to whole steps, so even a 1 ms one shows.
    fn covering(&self, from: i64, to: i64) -> (f64, f64) {
        let first = (from - self.origin).div_euclid(self.step);
        let last = (to - self.origin).div_euclid(self.step) + 1;
        let at = |index: i64| (index * self.step) as f64 / 1e6;
        (at(first.max(0)), at(last.min(self.steps as i64)))
    }
}

/// `a / b` rounded up, for positive `a` and `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Every web host that answered in the run, each with one colour in every panel.
struct Hosts(Vec<String>);

impl Hosts {
    fn of(samples: &[Sample]) -> Self {
        let named: BTreeSet<&str> = samples
            .iter()
            .filter_map(|s| s.served_by.as_deref())
            .collect();
        let mut hosts: Vec<String> = named.into_iter().map(str::to_owned).collect();
        if samples.iter().any(|s| s.served_by.is_none()) {
            hosts.push(UNKNOWN_HOST.to_owned());
        }
        Hosts(hosts)
    }

    fn index(&self, sample: &Sample) -> usize {
        let name = sample.served_by.as_deref().unwrap_or(UNKNOWN_HOST);
        self.0
            .iter()
            .position(|h| h == name)
            .expect("every sample's host is listed")
    }

    /// (admitted, refused) fill of the host at `index`.
    fn colours(&self, index: usize) -> (RGBColor, RGBColor) {
        if self.0[index] == UNKNOWN_HOST {
            UNKNOWN_COLOURS
        } else {
            HOST_COLOURS[index % HOST_COLOURS.len()]
        }
    }
}

/// One client's answers under one policy, counted per step.
struct Panel<'a> {
    report: &'a ClientReport,
    /// Per host of [`Hosts`], per step.
    admitted: Vec<Vec<u32>>,
    refused: Vec<Vec<u32>>,
    /// Per step: 5xx, no answer, anything neither admitted nor 429.
    bad: Vec<u32>,
    /// Per limit drawn ([`drawn_limits`]): admissions in its trailing window at the
    /// end of each step.
    trailing: Vec<Vec<usize>>,
}

impl<'a> Panel<'a> {
    fn new(
        report: &'a ClientReport,
        run: &K6Run,
        limiter: &Limiter,
        timeline: &Timeline,
        hosts: &Hosts,
    ) -> Self {
        let zero = || vec![vec![0u32; timeline.steps]; hosts.0.len()];
        let (mut admitted, mut refused) = (zero(), zero());
        let mut bad = vec![0u32; timeline.steps];
        let mut admitted_at = Vec::new();
        let samples = run.samples.iter().filter(|s| {
            s.client == report.client && limiter.policies.for_route(s.route).0 == report.policy
        });
        for sample in samples {
            let step = timeline.index(sample);
            match sample.status {
                200..400 => {
                    admitted[hosts.index(sample)][step] += 1;
                    admitted_at.push(sample.start + (sample.end - sample.start) / 2);
                }
                429 => refused[hosts.index(sample)][step] += 1,
                _ => bad[step] += 1,
            }
        }
        admitted_at.sort_unstable();
        let upto = |t: i64| admitted_at.partition_point(|&a| a <= t);
        let trailing = drawn_limits(report)
            .iter()
            .map(|limit| {
                let window =
                    i64::try_from(limit.window_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
                (1..=timeline.steps as i64)
                    .map(|k| {
                        let t = timeline.origin + k * timeline.step;
                        upto(t) - upto(t.saturating_sub(window))
                    })
                    .collect()
            })
            .collect();
        Panel {
            report,
            admitted,
            refused,
            bad,
            trailing,
        }
    }

    fn title(&self, verdict: &Verdict) -> String {
        let r = self.report;
        let limit = if r.unlimited {
            "unlimited (an override)".to_owned()
        } else {
            let limits: Vec<String> = r
                .limits
                .iter()
                .map(|l| format!("{} per {}", l.limit, window_text(l.window_ms)))
                .collect();
            format!("limit {}", limits.join(" and "))
        };
        format!(
            "client {}, policy {}: {limit} ({}): {} requests, {} admitted, {} refused",
            r.client,
            r.policy,
            verdict.algorithm.as_str(),
            r.requests,
            r.admitted,
            r.limited
        )
    }
}

/// The limits whose trailing counts a panel draws: every limit of the policy; for an
/// unlimited client, whose report carries a stand-in limit, only that one's window (and no
/// limit line, see [`limit_line`]).
fn drawn_limits(report: &ClientReport) -> &[LimitReport] {
    if report.unlimited {
        &report.limits[..1]
    } else {
        &report.limits
    }
}

/// The height of `limit`'s line, if the panel draws one.
fn limit_line(report: &ClientReport, limit: &LimitReport) -> Option<u32> {
    (!report.unlimited).then_some(limit.limit)
}

/// The (trailing count, limit) line colours of the `index`th limit.
fn limit_colours(index: usize) -> (RGBColor, RGBColor) {
    LIMIT_LINES[index % LIMIT_LINES.len()]
}

/// "60 s", "1.5 s", "250 ms".
fn window_text(window_ms: u64) -> String {
    if window_ms.is_multiple_of(1000) {
        format!("{} s", window_ms / 1000)
    } else if window_ms > 1000 {
        format!("{} s", window_ms as f64 / 1000.0)
    } else {
        format!("{window_ms} ms")
    }
}

/// Stacks `counts` (per host, per step) into one bar per step, one series per host.
fn stacked(counts: &[Vec<u32>], extra: Option<&[u32]>) -> Vec<Vec<(usize, u32, u32)>> {
    let steps = counts.first().map_or(0, Vec::len);
    let mut base = vec![0u32; steps];
    let mut layers: Vec<&[u32]> = counts.iter().map(Vec::as_slice).collect();
    layers.extend(extra);
    layers
        .iter()
        .map(|layer| {
            layer
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(step, &n)| {
                    let from = base[step];
                    base[step] += n;
                    (step, from, from + n)
                })
                .collect()
        })
        .collect()
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    timeline: &Timeline,
    hosts: &Hosts,
    verdict: &Verdict,
) -> Result<(), ChartError> {
    let (plots, legend) = area.split_horizontally(WIDTH - LEGEND);
    let plots = plots.titled(&panel.title(verdict), (FONT, 16))?;
    let (top, bottom) = plots.split_vertically(ADMITTED);
    let report = panel.report;
    let bar = |step: usize, from: u32, to: u32| {
        let x0 = (step as i64 * timeline.step) as f64 / 1e6;
        let width = timeline.step as f64 / 1e6;
        [(x0 + width * 0.1, from), (x0 + width * 0.9, to)]
    };
    let highest = |bars: &[Vec<(usize, u32, u32)>]| {
        bars.iter()
            .flatten()
            .map(|&(_, _, to)| to)
            .max()
            .unwrap_or(0)
    };

    let admitted = stacked(&panel.admitted, None);
    let limits = drawn_limits(report);
    let trailing_max = panel.trailing.iter().flatten().copied().max().unwrap_or(0) as u32;
    let limit_max = limits
        .iter()
        .filter_map(|l| limit_line(report, l))
        .max()
        .unwrap_or(0);
    let top_max = highest(&admitted).max(limit_max).max(trailing_max);
    let mut chart = ChartBuilder::on(&top)
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(48)
        .caption(
            format!("admitted per {} (bars, by web host)", timeline.per()),
            (FONT, 14),
        )
        .build_cartesian_2d(0f64..timeline.end(), 0..headroom(top_max))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| seconds_label(*x))
        .y_desc("admitted")
        .draw()?;
    draw_problems(&mut chart, panel, timeline, headroom(top_max))?;
    for (host, bars) in admitted.iter().enumerate() {
        let fill = hosts.colours(host).0.filled();
        chart.draw_series(
            bars.iter()
                .map(|&(step, from, to)| Rectangle::new(bar(step, from, to), fill)),
        )?;
    }
    for (index, (limit, counts)) in limits.iter().zip(&panel.trailing).enumerate() {
        let (trailing_colour, limit_colour) = limit_colours(index);
        let trailing = std::iter::once((0.0, 0)).chain(
            counts
                .iter()
                .enumerate()
                .map(|(k, &n)| (((k as i64 + 1) * timeline.step) as f64 / 1e6, n as u32)),
        );
        chart.draw_series(LineSeries::new(trailing, trailing_colour.stroke_width(2)))?;
        if let Some(height) = limit_line(report, limit) {
            chart.draw_series(DashedLineSeries::new(
                [(0.0, height), (timeline.end(), height)],
                10,
                6,
                limit_colour.stroke_width(2),
            ))?;
        }
    }

    let refused = stacked(&panel.refused, Some(panel.bad.as_slice()));
    let bottom_max = headroom(highest(&refused));
    let mut chart = ChartBuilder::on(&bottom)
        .margin(6)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .caption(
            format!("refused (429) per {}, by web host", timeline.per()),
            (FONT, 14),
        )
        .build_cartesian_2d(0f64..timeline.end(), 0..bottom_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| seconds_label(*x))
        .y_desc("refused")
        .x_desc("seconds since the first request")
        .draw()?;
    draw_problems(&mut chart, panel, timeline, bottom_max)?;
    for (layer, bars) in refused.iter().enumerate() {
        let fill = if layer < hosts.0.len() {
            hosts.colours(layer).1.filled()
        } else {
            BAD_ANSWER.filled()
        };
        chart.draw_series(
            bars.iter()
                .map(|&(step, from, to)| Rectangle::new(bar(step, from, to), fill)),
        )?;
    }
    draw_legend(&legend, panel, hosts)
}

/// "10", "0.15": to the millisecond, without the float's noise ("0.15000000000000002").
fn seconds_label(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The top of a plot whose highest mark is `highest`: room above it for the eye.
fn headroom(highest: u32) -> u32 {
    highest + highest.div_ceil(8) + 1
}

fn draw_problems(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, RangedCoordu32>>,
    panel: &Panel,
    timeline: &Timeline,
    y_top: u32,
) -> Result<(), ChartError> {
    chart.draw_series(panel.report.problems.iter().map(|p| {
        let (x0, x1) = timeline.covering(p.from, p.to);
        Rectangle::new([(x0, 0), (x1, y_top)], PROBLEM.mix(0.22).filled())
    }))?;
    Ok(())
}

/// The key, beside the panel: only what the panel shows.
fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    hosts: &Hosts,
) -> Result<(), ChartError> {
    let font = (FONT, 14).into_font();
    let mut y = 40;
    let mut row = |swatch: &dyn Fn(i32) -> Result<(), ChartError>, label: &str| {
        swatch(y)?;
        area.draw(&Text::new(label.to_owned(), (34, y + 1), font.clone()))?;
        y += 22;
        Ok::<(), ChartError>(())
    };
    let block = |colour: RGBAColor| {
        move |y: i32| -> Result<(), ChartError> {
            area.draw(&Rectangle::new([(10, y), (26, y + 14)], colour.filled()))?;
            Ok(())
        }
    };
    let answered = |counts: &[Vec<u32>], host: usize| counts[host].iter().any(|n| *n > 0);
    for host in 0..hosts.0.len() {
        let (admitted, refused) = hosts.colours(host);
        if answered(&panel.admitted, host) {
            row(
                &block(admitted.to_rgba()),
                &format!("{} admitted", hosts.0[host]),
            )?;
        }
        if answered(&panel.refused, host) {
            row(
                &block(refused.to_rgba()),
                &format!("{} refused", hosts.0[host]),
            )?;
        }
    }
    if panel.bad.iter().any(|n| *n > 0) {
        row(&block(BAD_ANSWER.to_rgba()), "5xx or no answer")?;
    }
    let report = panel.report;
    let line = |dashed: bool, colour: RGBColor| {
        move |y: i32| -> Result<(), ChartError> {
            let points = [(8, y + 7), (28, y + 7)];
            if dashed {
                area.draw(&DashedPathElement::new(
                    points,
                    6,
                    3,
                    colour.stroke_width(2),
                ))?;
            } else {
                area.draw(&PathElement::new(points, colour.stroke_width(2)))?;
            }
            Ok(())
        }
    };
    for (index, limit) in drawn_limits(report).iter().enumerate() {
        let (trailing_colour, limit_colour) = limit_colours(index);
        let window = window_text(limit.window_ms);
        row(
            &line(false, trailing_colour),
            &format!("admitted in trailing {window}"),
        )?;
        if let Some(height) = limit_line(report, limit) {
            row(
                &line(true, limit_colour),
                &format!("limit {height} per {window}"),
            )?;
        }
    }
    let kinds: BTreeSet<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    if kinds.is_empty() {
        row(&|_| Ok(()), "verdict: no problem here")?;
    }
    for kind in kinds {
        row(
            &block(PROBLEM.mix(0.22)),
            &format!("problem: {}", kind.describe()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lasting(micros: i64) -> Timeline {
        let sample = |start, end| Sample {
            client: "c".into(),
            route: "shorten",
            start,
            end,
            status: 200,
            served_by: None,
        };
        Timeline::of(&[
            sample(5_000_000, 5_000_100),
            sample(5_000_000, 5_000_000 + micros),
        ])
    }

    #[test]
    fn a_bar_is_the_shortest_step_that_keeps_the_run_within_the_most_bars() {
        for (span, step, per) in [
            (100_000_000, 1_000_000, "second"),
            (300_000, 5_000, "5 ms"),
            (40_000, 1_000, "1 ms"),
            (1_000_000_000, 10_000_000, "10 s"),
            (3_600_000_000, 30_000_000, "30 s"),
        ] {
            let timeline = lasting(span);
            assert_eq!(
                (timeline.step, timeline.per().as_str()),
                (step, per),
                "{span}"
            );
            assert!(timeline.steps as i64 <= MOST_BARS, "{span}");
            assert!(
                timeline.step * timeline.steps as i64 >= span,
                "{span} covered"
            );
        }
    }

    #[test]
    fn a_problem_is_shaded_over_every_step_it_touches() {
        // 100 s in 1 s steps from 5 s after the epoch.
        let timeline = lasting(100_000_000);
        assert_eq!(
            timeline.covering(5_000_000 + 12_300_000, 5_000_000 + 12_310_000),
            (12.0, 13.0)
        );
        assert_eq!(
            timeline.covering(5_000_000 + 9_900_000, 5_000_000 + 10_100_000),
            (9.0, 11.0)
        );
        assert_eq!(
            timeline.covering(0, 5_000_000 + 500_000),
            (0.0, 1.0),
            "clamped to the run"
        );
    }
}
