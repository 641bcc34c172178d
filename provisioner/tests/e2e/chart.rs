//! A load test's `chart.svg` and `index.html` read back as a newcomer reads them: each series
//! found through the legend row that names it (its swatch's colour), then its marks in the
//! plots. The e2e test holds real runs to it; tests/chart.rs holds synthetic ones.

use std::collections::BTreeMap;
use std::path::Path;

/// A drawn mark: a rectangle (bars, shading, swatches) or a line (`points`).
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Rect {
        x: f64,
        y: f64,
        width: f64,
        height: f64,
    },
    Line(Vec<(f64, f64)>),
}

/// How a mark is painted: its element, colour and opacity.
type Paint = (&'static str, String, String);

/// The chart as its marks and texts, in drawing order.
pub struct ChartReading {
    /// Every text, in order.
    pub texts: Vec<String>,
    /// Per legend label: the marks painted like its swatch, the legend's own swatches left out.
    pub series: BTreeMap<String, Vec<Mark>>,
    /// Per panel (from its title, "client ...", down to the next one): the same, within it.
    pub panels: Vec<ChartReading>,
}

impl Mark {
    /// (left, top, right, bottom) in pixels.
    fn bounds(&self) -> (f64, f64, f64, f64) {
        match self {
            Mark::Rect {
                x,
                y,
                width,
                height,
            } => (*x, *y, x + width, y + height),
            Mark::Line(points) => points.iter().fold(
                (
                    f64::INFINITY,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NEG_INFINITY,
                ),
                |(l, t, r, b), &(x, y)| (l.min(x), t.min(y), r.max(x), b.max(y)),
            ),
        }
    }
}

impl ChartReading {
    pub fn parse(svg: &str) -> Self {
        let doc = roxmltree::Document::parse(svg).expect("chart.svg is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let mut drawn: Vec<(Paint, Mark)> = Vec::new();
        // (x, y, anchored at its start, content)
        let mut texts: Vec<(f64, f64, bool, String)> = Vec::new();
        for node in doc.descendants().filter(|n| n.is_element()) {
            let attr = |name: &str| node.attribute(name).unwrap_or("").to_owned();
            let number = |name: &str| attr(name).parse::<f64>().unwrap_or(f64::NAN);
            match node.tag_name().name() {
                "rect" => drawn.push((
                    ("rect", attr("fill"), attr("opacity")),
                    Mark::Rect {
                        x: number("x"),
                        y: number("y"),
                        width: number("width"),
                        height: number("height"),
                    },
                )),
                "polyline" => drawn.push((
                    ("line", attr("stroke"), attr("opacity")),
                    Mark::Line(
                        attr("points")
                            .split_whitespace()
                            .map(|p| {
                                let (x, y) = p.split_once(',').expect("x,y");
                                (x.parse().expect("x"), y.parse().expect("y"))
                            })
                            .collect(),
                    ),
                )),
                "line" => drawn.push((
                    ("line", attr("stroke"), attr("opacity")),
                    Mark::Line(vec![
                        (number("x1"), number("y1")),
                        (number("x2"), number("y2")),
                    ]),
                )),
                "text" => {
                    let content: String = node
                        .descendants()
                        .filter(|n| n.is_text())
                        .filter_map(|n| n.text())
                        .collect();
                    texts.push((
                        number("x"),
                        number("y"),
                        attr("text-anchor") == "start",
                        content.trim().to_owned(),
                    ));
                }
                _ => {}
            }
        }
        // A legend row: a small swatch just left of a text that starts there.
        let swatch_of = |&(tx, ty, starts, _): &(f64, f64, bool, String)| -> Vec<usize> {
            if !starts {
                return Vec::new();
            }
            (0..drawn.len())
                .filter(|&i| {
                    let (left, top, right, bottom) = drawn[i].1.bounds();
                    right <= tx
                        && tx - left <= 30.0
                        && bottom - top <= 20.0
                        && (top - ty).abs() <= 8.0
                })
                .collect()
        };
        let rows: Vec<(String, f64, Vec<usize>)> = texts
            .iter()
            .map(|text| (text.3.clone(), text.1, swatch_of(text)))
            .filter(|(_, _, swatch)| !swatch.is_empty())
            .collect();
        let swatches: Vec<usize> = rows.iter().flat_map(|(_, _, own)| own.clone()).collect();
        // Within `band` (pixels from the top): its texts, and per legend row the marks
        // painted like its swatch; a label that repeats keeps the marks of its first row.
        let within = |(top, bottom): (f64, f64)| {
            let inside = |y: f64| top <= y && y < bottom;
            let mut series: BTreeMap<String, Vec<Mark>> = BTreeMap::new();
            for (label, _, swatch) in rows.iter().filter(|row| inside(row.1)) {
                let paint = &drawn[swatch[0]].0;
                let entry = series.entry(label.clone()).or_default();
                if entry.is_empty() {
                    entry.extend(
                        drawn
                            .iter()
                            .enumerate()
                            .filter(|(i, (p, mark))| {
                                p == paint && !swatches.contains(i) && inside(mark.bounds().1)
                            })
                            .map(|(_, (_, mark))| mark.clone()),
                    );
                }
            }
            let texts = texts
                .iter()
                .filter(|t| inside(t.1))
                .map(|t| t.3.clone())
                .collect();
            (texts, series)
        };
        let mut tops: Vec<f64> = texts
            .iter()
            .filter(|t| t.3.starts_with("client "))
            .map(|t| t.1)
            .collect();
        tops.sort_by(f64::total_cmp);
        let panels = tops
            .iter()
            .enumerate()
            .map(|(i, &top)| {
                let bottom = tops.get(i + 1).copied().unwrap_or(f64::INFINITY);
                let (texts, series) = within((top, bottom));
                ChartReading {
                    texts,
                    series,
                    panels: Vec::new(),
                }
            })
            .collect();
        let (texts, series) = within((f64::NEG_INFINITY, f64::INFINITY));
        ChartReading {
            texts,
            series,
            panels,
        }
    }

    /// The panel whose title contains `title`, e.g. "policy shorten:".
    pub fn panel(&self, title: &str) -> &ChartReading {
        self.panels
            .iter()
            .find(|p| {
                p.texts
                    .iter()
                    .any(|t| t.starts_with("client ") && t.contains(title))
            })
            .unwrap_or_else(|| panic!("no panel {title:?}: {:?}", self.texts))
    }

    /// The marks of the series whose legend row reads `label`; panics when there is none.
    pub fn series(&self, label: &str) -> &[Mark] {
        self.series.get(label).unwrap_or_else(|| {
            panic!(
                "no legend row {label:?}; rows: {:?}",
                self.series.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The legend row that starts with `prefix`, e.g. "limit ".
    pub fn label_starting(&self, prefix: &str) -> &str {
        self.series
            .keys()
            .find(|k| k.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no legend row starting {prefix:?}: {:?}",
                    self.series.keys()
                )
            })
    }

    /// The y (pixels) of a series drawn as horizontal lines only, as the limit is.
    pub fn horizontal_at(&self, label: &str) -> f64 {
        let ys: Vec<f64> = self
            .series(label)
            .iter()
            .flat_map(|mark| match mark {
                Mark::Line(points) => points.iter().map(|p| p.1).collect::<Vec<f64>>(),
                Mark::Rect { .. } => panic!("{label:?} is drawn as a line"),
            })
            .collect();
        assert!(!ys.is_empty(), "{label:?} is drawn");
        assert!(
            ys.iter().all(|y| *y == ys[0]),
            "{label:?} is horizontal: {ys:?}"
        );
        ys[0]
    }
}

/// A run's folder holds a chart with a panel for `policy` in which every one of `hosts`
/// answered with bars of its own, admissions reach the limit's line in the trailing window
/// (and the limit is drawn as a horizontal line), and an `index.html` that shows the chart,
/// the verdict's text and k6's report when there is one.
pub fn assert_report_charts(folder: &Path, policy: &str, hosts: &[&str]) {
    let read = |name: &str| {
        std::fs::read_to_string(folder.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", folder.join(name).display()))
    };
    let whole = ChartReading::parse(&read("chart.svg"));
    let chart = whole.panel(&format!("policy {policy}:"));
    let bars = |label: &str| {
        chart.series.get(label).map_or(0, |marks| {
            marks
                .iter()
                .filter(|m| matches!(m, Mark::Rect { .. }))
                .count()
        })
    };
    for host in hosts {
        let (admitted, refused) = (
            bars(&format!("{host} admitted")),
            bars(&format!("{host} refused")),
        );
        assert!(
            admitted + refused > 0,
            "{host} answered: {:?}",
            chart.series.keys()
        );
    }
    assert!(
        hosts.iter().any(|h| bars(&format!("{h} admitted")) > 0),
        "admissions are drawn: {:?}",
        chart.series.keys()
    );
    assert!(
        !chart.series.keys().any(|k| k.starts_with("(unknown)")),
        "every answer named its host: {:?}",
        chart.series.keys()
    );
    let limit = chart.label_starting("limit ").to_owned();
    let limit_y = chart.horizontal_at(&limit);
    let trailing = chart.label_starting("admitted in trailing ");
    let highest = chart
        .series(trailing)
        .iter()
        .flat_map(|m| match m {
            Mark::Line(points) => points.iter().map(|p| p.1).collect::<Vec<_>>(),
            Mark::Rect { .. } => Vec::new(),
        })
        .fold(f64::INFINITY, f64::min);
    // SVG's y grows downwards: reaching the limit is being as high as its line.
    assert!(
        highest <= limit_y,
        "admissions in the trailing window reach the limit (line at y={limit_y}, highest y={highest})"
    );

    let page = read("index.html");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&page, options)
        .expect("index.html is well-formed (XHTML)");
    let element = |tag: &str, attr: &str, value: &str| {
        doc.descendants()
            .any(|n| n.has_tag_name(tag) && n.attribute(attr) == Some(value))
    };
    assert!(
        element("img", "src", "chart.svg"),
        "the page shows the chart"
    );
    let verdict: String = doc
        .descendants()
        .find(|n| n.has_tag_name("pre"))
        .expect("the verdict's text")
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(
        verdict.trim(),
        read("verdict.txt").trim(),
        "the verdict, as verdict.txt"
    );
    if folder.join("report.html").is_file() {
        assert!(
            element("iframe", "src", "report.html"),
            "k6's report is embedded"
        );
    }
}
