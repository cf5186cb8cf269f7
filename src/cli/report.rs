//! The HTML report of a `regbox soak` run: one self-contained file (inline CSS, plots drawn by plotters
//! as inline SVG, nothing fetched) with the run's summary, five plots, and the invariant and fault tables.

use std::fmt::Write as _;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::plot::{register_font, FONT};
use crate::core::soak::{summarize, Event, FaultInterval, FaultKind, InvariantResult, Summary};
use crate::core::topology::graphio::xml_escape as esc;

/// Width of every plot, in SVG user units (the page scales them down on narrow screens).
const WIDTH: u32 = 1100;
/// Nodes beyond this many get no legend entry each, and thinner lines.
const LEGEND_NODES: usize = 16;

/// Colours of the nodes' lines (Tableau 10), reused in turn past ten nodes.
const NODE_COLOURS: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (89, 161, 79),
    (225, 87, 89),
    (118, 183, 178),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];

fn node_colour(i: usize) -> RGBColor {
    let (r, g, b) = NODE_COLOURS[i % NODE_COLOURS.len()];
    RGBColor(r, g, b)
}

fn fault_colour(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::Partition => RGBColor(214, 39, 40),
        FaultKind::Netem => RGBColor(255, 127, 14),
        FaultKind::Kill => RGBColor(148, 103, 189),
        FaultKind::Restart => RGBColor(140, 86, 75),
        FaultKind::Pause => RGBColor(23, 190, 207),
        FaultKind::Throttle => RGBColor(188, 189, 34),
        FaultKind::Clock => RGBColor(31, 119, 180),
        FaultKind::Disk => RGBColor(127, 127, 127),
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The report of a run's events, as one HTML document.
pub fn html(events: &[Event]) -> String {
    let s = summarize(events);
    let mut out = String::new();
    let title = if s.cluster.is_empty() {
        "regbox soak".to_owned()
    } else {
        format!("regbox soak: {}", s.cluster)
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    header(&mut out, &s, &title, events.len());
    section(&mut out, "Height per node", &heights_section(&s));
    section(&mut out, "Reorgs and forks", &reorgs_section(&s));
    section(
        &mut out,
        "Convergence after each fault",
        &convergence_section(&s),
    );
    section(&mut out, "Block propagation", &propagation_section(&s));
    section(&mut out, "Fault timeline", &timeline_section(&s));
    section(&mut out, "Invariants", &invariants_table(&s));
    section(&mut out, "Faults", &faults_table(&s));
    if !s.crashes.is_empty() {
        section(&mut out, "Crashes", &crashes_table(&s));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const CSS: &str = "
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; }
h1 { font-size: 24px; margin: 0; font-weight: 600; }
h2 { font-size: 17px; margin: 0 0 10px; font-weight: 600; }
.badge { font-weight: 700; font-size: 13px; letter-spacing: .06em; padding: 3px 10px; border-radius: 12px; color: #fff; }
.badge.pass { background: var(--ok); } .badge.fail { background: var(--bad); } .badge.open { background: var(--muted); }
.reason { margin: 8px 0 0; color: var(--bad); font-weight: 500; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 8px 20px;
  margin: 18px 0 0; padding: 14px 18px; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
.facts div { display: flex; flex-direction: column; }
.facts dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.facts dd { margin: 0; font-size: 15px; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
section { margin-top: 22px; padding: 16px 18px; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
svg { display: block; width: 100%; height: auto; }
.note { color: var(--muted); margin: 6px 0 0; }
.none { padding: 18px; text-align: center; color: var(--muted); background: var(--bg); border-radius: 6px; font-style: italic; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 8px 0 0; color: var(--muted); font-size: 13px; }
.legend span { white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.swatch.line { height: 3px; vertical-align: 3px; }
.swatch.shade { opacity: .35; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; background: var(--bg); position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.detail { overflow-wrap: anywhere; }
tr.failed td { background: #ffebe9; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
details { margin-top: 12px; } summary { cursor: pointer; color: var(--muted); margin-bottom: 8px; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
";

fn section(out: &mut String, title: &str, body: &str) {
    let _ = write!(
        out,
        "<section>\n<h2>{}</h2>\n{body}\n</section>\n",
        esc(title)
    );
}

fn none(what: &str) -> String {
    format!("<div class=\"none\">none — {}</div>", esc(what))
}

/// The run's end on the plots' time axis: the planned duration or the last event, whichever is later.
fn x_max(s: &Summary) -> f64 {
    s.duration_s.max(s.last_t).max(1.0)
}

/// `42s`, `12:05` or `1:02:05`.
fn clock(t: f64) -> String {
    let t = t.max(0.0).round() as u64;
    let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}:{m:02}:{sec:02}")
    } else if m > 0 {
        format!("{m}:{sec:02}")
    } else {
        format!("{sec}s")
    }
}

fn secs(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.1} s")
    }
}

/// Value labels drawn on an axis at once: at most this many.
const VALUE_LABELS: usize = 8;

/// The labels of a value axis over `range`: at the ticks plotters draws there (at most
/// [`VALUE_LABELS`]), each with the fewest decimals (up to 6) that print every tick differently — so a
/// short run's small seconds read `0.05, 0.10, 0.15`, not `0.1, 0.1, 0.2`.
fn value_labels(range: std::ops::Range<f64>) -> impl Fn(&f64) -> String {
    let ticks = RangedCoordf64::from(range).key_points(VALUE_LABELS);
    let distinct = |d: usize| {
        let printed: std::collections::BTreeSet<String> =
            ticks.iter().map(|v| format!("{v:.d$}")).collect();
        printed.len() == ticks.len()
    };
    let decimals = (0..=6).find(|&d| distinct(d)).unwrap_or(6);
    move |v: &f64| format!("{v:.decimals$}")
}

/// The label of a whole number; none at a fractional tick (heights, steps and counts are whole).
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

fn median_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Some((median, v[v.len() - 1]))
}

fn header(out: &mut String, s: &Summary, title: &str, events: usize) {
    let (class, word) = match s.ok {
        Some(true) => ("pass", "PASS"),
        Some(false) => ("fail", "FAIL"),
        None => ("open", "NO END"),
    };
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><span class=\"badge {class}\">{word}</span></header>",
        esc(title)
    );
    match (&s.reason, s.ok) {
        (Some(r), _) => {
            let _ = writeln!(out, "<p class=\"reason\">{}</p>", esc(r));
        }
        (None, None) => {
            out.push_str(
                "<p class=\"reason\">the log has no end event: the run was cut short</p>\n",
            );
        }
        _ => {}
    }
    let failed = s.failed_invariants();
    let conv: Vec<f64> = s.convergence.iter().map(|c| c.1).collect();
    let prop: Vec<f64> = s.propagation.iter().map(|p| p.1).collect();
    let deepest = s.reorgs.iter().map(|r| r.depth).max();
    let facts: Vec<(&str, String)> = vec![
        ("Seed", s.seed.to_string()),
        ("Planned duration", clock(s.duration_s)),
        ("Ran for", clock(s.last_t)),
        ("Nodes", s.nodes.len().to_string()),
        (
            "Faults drawn from",
            if s.faults.is_empty() {
                "none".into()
            } else {
                s.faults.join(", ")
            },
        ),
        ("Fault steps", s.fault_intervals.len().to_string()),
        ("Blocks mined", s.blocks.to_string()),
        ("Transactions", s.txs.to_string()),
        (
            "Reorgs",
            match deepest {
                Some(d) => format!("{} (deepest {d})", s.reorgs.len()),
                None => "none".into(),
            },
        ),
        ("Forks", s.forks.to_string()),
        (
            "Convergence, median / max",
            median_max(&conv).map_or("none".into(), |(m, x)| format!("{} / {}", secs(m), secs(x))),
        ),
        (
            "Propagation, median / max",
            median_max(&prop).map_or("none".into(), |(m, x)| format!("{} / {}", secs(m), secs(x))),
        ),
        (
            "Invariant checks failed",
            format!("{failed} of {}", s.invariants.len()),
        ),
        ("Crashes", s.crashes.len().to_string()),
        ("Events", events.to_string()),
    ];
    out.push_str("<dl class=\"facts\">\n");
    for (k, v) in facts {
        let _ = writeln!(out, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(&v));
    }
    out.push_str("</dl>\n");
}

type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// One plot drawn by `draw` on a `WIDTH`×`height` SVG, as the SVG text (or a note if drawing failed).
fn svg(height: u32, draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Drawn) -> String {
    register_font();
    let mut text = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|_| draw(&root))
            .and_then(|_| root.present())
    };
    match drawn {
        Ok(()) => text,
        Err(e) => format!(
            "<div class=\"none\">this plot could not be drawn: {}</div>",
            esc(&e.to_string())
        ),
    }
}

fn legend(items: &[(String, String, &str)]) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for (colour, label, class) in items {
        let _ = write!(
            out,
            "<span><i class=\"swatch {class}\" style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    out.push_str("</div>");
    out
}

/// A legend entry per fault kind that occurs.
fn fault_legend(s: &Summary, class: &str) -> Vec<(String, String, &'static str)> {
    let class: &'static str = if class == "shade" { "shade" } else { "" };
    (FaultKind::ALL.iter())
        .filter(|k| s.fault_intervals.iter().any(|f| f.fault == **k))
        .map(|k| (hex(fault_colour(*k)), k.name().to_owned(), class))
        .collect()
}

/// The end of a fault on the time axis: its logged end, or the end of the log.
fn fault_end(f: &FaultInterval, s: &Summary) -> f64 {
    f.end.unwrap_or(s.last_t).max(f.start)
}

/// Shades every fault's interval across a time plot (a thin band for instantaneous ones).
fn shade_faults<DB: DrawingBackend, X: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, RangedCoordf64>>,
    s: &Summary,
    y: (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let min_width = x_max(s) * 0.002;
    chart.draw_series(s.fault_intervals.iter().map(|f| {
        let end = fault_end(f, s).max(f.start + min_width);
        Rectangle::new(
            [(f.start, y.0), (end, y.1)],
            fault_colour(f.fault).mix(0.13).filled(),
        )
    }))?;
    Ok(())
}

fn time_desc(s: &Summary) -> &'static str {
    if x_max(s) >= 3600.0 {
        "time since start (h:mm:ss)"
    } else if x_max(s) >= 60.0 {
        "time since start (m:ss)"
    } else {
        "time since start"
    }
}

/// The run's time axis in seconds, ticked on round clock values (every 10 s, 1 min, 5 min, …) rather
/// than plotters' decimal ones (every 200 s), and labelled as a clock.
struct TimeAxis {
    inner: RangedCoordf64,
    step: f64,
}

fn time_axis(s: &Summary) -> TimeAxis {
    const STEPS: [f64; 15] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        21600.0,
    ];
    let max = x_max(s);
    let step = (STEPS.iter().copied())
        .find(|st| max / st <= 12.0)
        .unwrap_or(43200.0 * (max / 43200.0 / 12.0).ceil());
    TimeAxis {
        inner: (0f64..max).into(),
        step,
    }
}

impl Ranged for TimeAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light grid lines halfway between the ticks.
        let (start, step) = if hint.weight().allow_light_points() {
            (self.step / 2.0, self.step)
        } else {
            (0.0, self.step)
        };
        let max = self.inner.range().end;
        (0..)
            .map(|i| start + i as f64 * step)
            .take_while(|t| *t <= max + 1e-9)
            .collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for TimeAxis {
    fn format(value: &f64) -> String {
        clock(*value)
    }

    /// Every tick in one format: `0:00`, `0:30`, `1:00` rather than `0s`, `30s`, `1:00`.
    fn format_ext(&self, value: &f64) -> String {
        let max = self.inner.range().end;
        let t = value.max(0.0).round() as u64;
        if max >= 3600.0 {
            format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
        } else if max >= 60.0 {
            format!("{}:{:02}", t / 60, t % 60)
        } else {
            format!("{t}s")
        }
    }
}

/// The rows of the fault timeline, centred on 0, 1, 2, … with a tick (and label) on each row only.
struct RowAxis(RangedCoordf64);

impl Ranged for RowAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.0.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        let r = self.0.range();
        (0..).map(f64::from).take_while(|v| *v < r.end).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.0.range()
    }
}

fn heights_section(s: &Summary) -> String {
    if s.heights.is_empty() {
        return none("no tip or block was logged");
    }
    let (lo, hi) = (s.heights.values().flatten())
        .fold((u64::MAX, 0), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (y0, y1) = (lo as f64 - 0.5, hi as f64 + 0.5 + (hi - lo) as f64 * 0.04);
    let nodes: Vec<&String> = (s.nodes.iter())
        .filter(|n| s.heights.contains_key(*n))
        .collect();
    let many = nodes.len() > LEGEND_NODES;
    let plot = svg(400, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(time_axis(s), y0..y1)?;
        house_style(&mut chart.configure_mesh())
            .y_label_formatter(&whole)
            .x_desc(time_desc(s))
            .y_desc("best tip height")
            .draw()?;
        shade_faults(&mut chart, s, (y0, y1))?;
        let width = if many { 1 } else { 2 };
        for (i, node) in nodes.iter().enumerate() {
            let series = &s.heights[*node];
            let mut steps = Vec::with_capacity(series.len() * 2 + 1);
            for (j, &(t, h)) in series.iter().enumerate() {
                if j > 0 {
                    steps.push((t, series[j - 1].1 as f64));
                }
                steps.push((t, h as f64));
            }
            if let Some(&(_, h)) = series.last() {
                steps.push((s.last_t, h as f64));
            }
            let colour = node_colour(i).mix(if many { 0.7 } else { 0.95 });
            chart.draw_series(LineSeries::new(steps, colour.stroke_width(width)))?;
        }
        chart.draw_series(
            (s.reorgs.iter()).map(|r| Cross::new((r.t, r.height as f64), 5, RED.stroke_width(2))),
        )?;
        Ok(())
    });
    let mut items: Vec<(String, String, &str)> = if many {
        vec![(
            "#888".into(),
            format!("{} nodes, one line each", nodes.len()),
            "line",
        )]
    } else {
        (nodes.iter().enumerate())
            .map(|(i, n)| (hex(node_colour(i)), (*n).clone(), "line"))
            .collect()
    };
    items.extend(fault_legend(s, "shade"));
    if !s.reorgs.is_empty() {
        items.push(("#ff0000".into(), "× reorg".into(), "line"));
    }
    format!("{plot}\n{}", legend(&items))
}

fn reorgs_section(s: &Summary) -> String {
    let forks = format!(
        "<p class=\"note\">{} fork(s): for each height, the distinct blocks some node had as its tip \
         there, less one.</p>",
        s.forks
    );
    if s.reorgs.is_empty() {
        return format!("{}\n{forks}", none("no node reorganised its chain"));
    }
    let deepest = s.reorgs.iter().map(|r| r.depth).max().unwrap_or(1);
    let mut counts = vec![0usize; deepest as usize + 1];
    for r in &s.reorgs {
        counts[r.depth as usize] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1) as f64;
    let plot = svg(300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0.4f64..deepest.max(8) as f64 + 0.6, 0f64..top * 1.15 + 0.5)?;
        house_style(&mut chart.configure_mesh())
            .disable_x_mesh()
            .x_labels(deepest.max(8) as usize + 2)
            .y_labels(6.min(top as usize + 2))
            .x_label_formatter(&whole)
            .y_label_formatter(&whole)
            .x_desc("reorg depth (blocks left)")
            .y_desc("reorgs")
            .draw()?;
        let bar = RGBColor(225, 87, 89);
        chart.draw_series((1..counts.len()).filter(|d| counts[*d] > 0).map(|d| {
            let x = d as f64;
            Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, counts[d] as f64)],
                bar.filled(),
            )
        }))?;
        let label =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series((1..counts.len()).filter(|d| counts[*d] > 0).map(|d| {
            Text::new(
                counts[d].to_string(),
                (d as f64, counts[d] as f64 + top * 0.02),
                label.clone(),
            )
        }))?;
        Ok(())
    });
    format!(
        "{plot}\n<p class=\"note\">{} reorg(s), the deepest {deepest} block(s).</p>\n{forks}",
        s.reorgs.len()
    )
}

fn convergence_section(s: &Summary) -> String {
    if s.fault_intervals.is_empty() {
        return none("no fault was injected");
    }
    if s.convergence.is_empty() {
        return none("no convergence was logged after any fault");
    }
    let last_step = s.fault_intervals.iter().map(|f| f.step).max().unwrap_or(0);
    let top = s
        .convergence
        .iter()
        .map(|c| c.1)
        .fold(0.0, f64::max)
        .max(0.1);
    let kind_of = |step: usize| {
        (s.fault_intervals.iter())
            .find(|f| f.step == step)
            .map(|f| f.fault)
    };
    let never: Vec<usize> = (s.fault_intervals.iter())
        .filter(|f| f.end.is_some() && s.converged_after(f.step).is_none())
        .map(|f| f.step)
        .collect();
    let plot = svg(320, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.6f64..last_step as f64 + 0.6, 0f64..top * 1.12)?;
        let step = |v: &f64| if *v >= 0.0 { whole(v) } else { String::new() };
        house_style(&mut chart.configure_mesh())
            .disable_x_mesh()
            .x_labels((last_step + 2).min(24))
            .x_label_formatter(&step)
            .y_labels(VALUE_LABELS)
            .y_label_formatter(&value_labels(0.0..top * 1.12))
            .x_desc("fault step")
            .y_desc("seconds to converge")
            .draw()?;
        let half = if last_step > 60 { 0.45 } else { 0.35 };
        chart.draw_series(s.convergence.iter().map(|&(step, secs)| {
            let colour = kind_of(step).map_or(RGBColor(120, 120, 120), fault_colour);
            let x = step as f64;
            Rectangle::new(
                [(x - half, 0.0), (x + half, secs)],
                colour.mix(0.85).filled(),
            )
        }))?;
        chart.draw_series(
            (never.iter())
                .map(|&step| Cross::new((step as f64, top * 0.03), 6, RED.stroke_width(2))),
        )?;
        Ok(())
    });
    let mut items = fault_legend(s, "");
    if !never.is_empty() {
        items.push(("#ff0000".into(), "× never converged".into(), "line"));
    }
    let mut out = format!("{plot}\n{}", legend(&items));
    if !never.is_empty() {
        let steps: Vec<String> = never.iter().map(|s| s.to_string()).collect();
        let _ = write!(
            out,
            "\n<p class=\"note\">No convergence logged after step(s) {}.</p>",
            steps.join(", ")
        );
    }
    out
}

fn propagation_section(s: &Summary) -> String {
    if s.propagation.is_empty() {
        return none("no block propagation was measured");
    }
    let top = s
        .propagation
        .iter()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(0.1)
        * 1.12;
    let plot = svg(320, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(time_axis(s), 0f64..top)?;
        house_style(&mut chart.configure_mesh())
            .y_labels(VALUE_LABELS)
            .y_label_formatter(&value_labels(0.0..top))
            .x_desc(time_desc(s))
            .y_desc("seconds to reach every node")
            .draw()?;
        shade_faults(&mut chart, s, (0.0, top))?;
        chart.draw_series(
            (s.propagation.iter())
                .map(|&(t, v)| Circle::new((t, v), 3, node_colour(0).mix(0.8).filled())),
        )?;
        Ok(())
    });
    let mut items = vec![(hex(node_colour(0)), "one block".to_owned(), "")];
    items.extend(fault_legend(s, "shade"));
    format!("{plot}\n{}", legend(&items))
}

fn timeline_section(s: &Summary) -> String {
    let kinds: Vec<FaultKind> = (FaultKind::ALL.iter().copied())
        .filter(|k| s.fault_intervals.iter().any(|f| f.fault == *k))
        .collect();
    if kinds.is_empty() {
        return none("no fault was injected");
    }
    let rows = kinds.len();
    let row = |k: FaultKind| (rows - 1 - kinds.iter().position(|x| *x == k).unwrap_or(0)) as f64;
    let xm = x_max(s);
    let height = 90 + 44 * rows as u32;
    let plot = svg(height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(90)
            .build_cartesian_2d(time_axis(s), RowAxis((-0.5f64..rows as f64 - 0.5).into()))?;
        let name = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < rows {
                kinds[rows - 1 - i as usize].name().to_owned()
            } else {
                String::new()
            }
        };
        house_style(&mut chart.configure_mesh())
            .disable_y_mesh()
            .y_label_formatter(&name)
            .x_desc(time_desc(s))
            .draw()?;
        let min_width = xm * 0.003;
        chart.draw_series(s.fault_intervals.iter().map(|f| {
            let y = row(f.fault);
            let end = fault_end(f, s).max(f.start + min_width);
            let alpha = if f.end.is_some() { 0.85 } else { 0.4 };
            Rectangle::new(
                [(f.start, y - 0.32), (end, y + 0.32)],
                fault_colour(f.fault).mix(alpha).filled(),
            )
        }))?;
        // Step numbers inside the bars wide enough to hold them.
        let px_per_s = (WIDTH as f64 - 120.0) / xm;
        let label = TextStyle::from((FONT, 12).into_font())
            .color(&WHITE)
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart.draw_series(
            (s.fault_intervals.iter())
                .filter(|f| (fault_end(f, s) - f.start) * px_per_s >= 26.0)
                .map(|f| {
                    let mid = (f.start + fault_end(f, s)) / 2.0;
                    Text::new(format!("#{}", f.step), (mid, row(f.fault)), label.clone())
                }),
        )?;
        Ok(())
    });
    format!(
        "{plot}\n<p class=\"note\">One row per fault kind; bars span each step from its start to its \
         end (#step inside when it fits). Restarts are instantaneous and show as thin marks.</p>"
    )
}

fn invariants_table(s: &Summary) -> String {
    if s.invariants.is_empty() {
        return none("no invariant was checked");
    }
    let failed: Vec<&InvariantResult> = s.invariants.iter().filter(|i| !i.ok).collect();
    let mut out = format!(
        "<p class=\"note\">{} check(s), <span class=\"{}\">{} failed</span>.</p>\n",
        s.invariants.len(),
        if failed.is_empty() { "ok" } else { "bad" },
        failed.len()
    );
    // The failures first, in full; every check behind a fold (a long run makes hundreds).
    if !failed.is_empty() {
        out.push_str(&check_rows(&failed));
    }
    let all: Vec<&InvariantResult> = s.invariants.iter().collect();
    let _ = write!(
        out,
        "<details{}><summary>All {} checks</summary>\n<div class=\"scroll\">{}</div></details>",
        if failed.is_empty() { " open" } else { "" },
        all.len(),
        check_rows(&all)
    );
    out
}

fn check_rows(checks: &[&InvariantResult]) -> String {
    let mut out = String::from(
        "<table>\n<thead><tr><th>time</th><th>step</th><th>invariant</th><th>result</th>\
         <th>nodes</th><th>detail</th></tr></thead>\n<tbody>\n",
    );
    for i in checks {
        let _ = writeln!(
            out,
            "<tr{}><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"detail\">{}</td></tr>",
            if i.ok { "" } else { " class=\"failed\"" },
            esc(&clock(i.t)),
            i.step.map_or("final".to_owned(), |s| s.to_string()),
            esc(&i.name),
            if i.ok {
                "<span class=\"ok\">✓ ok</span>"
            } else {
                "<span class=\"bad\">✗ failed</span>"
            },
            esc(&i.nodes.join(", ")),
            esc(&i.detail)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn faults_table(s: &Summary) -> String {
    if s.fault_intervals.is_empty() {
        return none("no fault was injected");
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table>\n<thead><tr><th>step</th><th>fault</th><th>start</th>\
         <th>end</th><th>lasted</th><th>nodes</th><th>detail</th><th>converged after</th></tr>\
         </thead>\n<tbody>\n",
    );
    for f in &s.fault_intervals {
        let (end, lasted) = match f.end {
            Some(e) => (clock(e), secs(e - f.start)),
            None => ("—".into(), "not ended".into()),
        };
        let converged = match (s.converged_after(f.step), f.end) {
            (Some(v), _) => secs(v),
            (None, Some(_)) => "never".into(),
            (None, None) => "—".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td><i class=\"swatch\" style=\"background:{}\"></i>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td class=\"detail\">{}</td><td class=\"num\">{}</td></tr>",
            f.step,
            hex(fault_colour(f.fault)),
            f.fault.name(),
            esc(&clock(f.start)),
            esc(&end),
            esc(&lasted),
            esc(&f.nodes.join(", ")),
            esc(&f.detail),
            esc(&converged)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn crashes_table(s: &Summary) -> String {
    let mut out = String::from(
        "<table>\n<thead><tr><th>time</th><th>node</th><th>detail</th></tr></thead>\n<tbody>\n",
    );
    for (t, node, detail) in &s.crashes {
        let _ = writeln!(
            out,
            "<tr class=\"failed\"><td class=\"num\">{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
            esc(&clock(*t)),
            esc(node),
            esc(detail)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The mesh every plot of the report shares: faint grid lines, the bundled font.
fn house_style<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType: std::fmt::Debug>,
    Y: Ranged<ValueType: std::fmt::Debug>,
    DB: DrawingBackend,
{
    mesh.light_line_style(RGBColor(244, 244, 244))
        .y_max_light_lines(1)
        .bold_line_style(RGBColor(225, 225, 225))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::soak::EventKind;
    use std::collections::BTreeMap;

    fn ev(t: f64, kind: EventKind) -> Event {
        Event::new(t, kind)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A small run: 3 nodes, a partition and a kill, one reorg, one failed invariant.
    fn small_log() -> Vec<Event> {
        let nodes = names(&["n0", "n1", "n2"]);
        let tip = |t: f64, node: &str, height: u64, hash: &str, reorg_depth: u64| {
            ev(
                t,
                EventKind::Tip {
                    node: node.into(),
                    height,
                    hash: hash.into(),
                    reorg_depth,
                },
            )
        };
        let mut e = vec![ev(
            0.0,
            EventKind::Start {
                cluster: "tri <&>".into(),
                seed: 9,
                nodes: nodes.clone(),
                duration_s: 120.0,
                faults: names(&["partition", "kill"]),
            },
        )];
        for n in &nodes {
            e.push(tip(0.5, n, 101, "h101", 0));
        }
        e.push(ev(
            10.0,
            EventKind::Fault {
                step: 0,
                fault: FaultKind::Partition,
                nodes: nodes.clone(),
                detail: "{n0} | {n1, n2}".into(),
            },
        ));
        e.push(ev(
            12.0,
            EventKind::Block {
                node: "n0".into(),
                height: 102,
                hash: "a102".into(),
            },
        ));
        e.push(tip(12.0, "n0", 102, "a102", 0));
        e.push(tip(14.0, "n1", 102, "b102", 0));
        e.push(tip(14.3, "n2", 102, "b102", 0));
        e.push(tip(15.0, "n1", 103, "b103", 0));
        e.push(tip(15.4, "n2", 103, "b103", 0));
        e.push(ev(
            40.0,
            EventKind::FaultEnd {
                step: 0,
                fault: FaultKind::Partition,
                nodes: nodes.clone(),
            },
        ));
        e.push(tip(41.5, "n0", 103, "b103", 1));
        e.push(ev(
            41.5,
            EventKind::Converged {
                step: 0,
                seconds: 1.5,
            },
        ));
        e.push(ev(
            41.5,
            EventKind::Invariant {
                step: Some(0),
                name: "converged".into(),
                ok: true,
                nodes: vec![],
                detail: "3 running node(s) on b103 at height 103".into(),
            },
        ));
        e.push(ev(
            15.5,
            EventKind::Propagation {
                hash: "b103".into(),
                seconds: 0.4,
            },
        ));
        e.push(ev(
            60.0,
            EventKind::Fault {
                step: 1,
                fault: FaultKind::Kill,
                nodes: names(&["n2"]),
                detail: "kill n2, start after 20s".into(),
            },
        ));
        e.push(ev(
            80.0,
            EventKind::FaultEnd {
                step: 1,
                fault: FaultKind::Kill,
                nodes: names(&["n2"]),
            },
        ));
        e.push(ev(
            90.0,
            EventKind::Invariant {
                step: Some(1),
                name: "mempools_agree".into(),
                ok: false,
                nodes: names(&["n2"]),
                detail: "n2 lacks 1 (<tx>)".into(),
            },
        ));
        e.push(ev(
            120.0,
            EventKind::End {
                ok: false,
                reason: Some("1 invariant check failed".into()),
            },
        ));
        e
    }

    /// A short run, as the issue saw it: 8 seconds, one partition, convergence and propagation in
    /// hundredths of a second, every node at one height.
    fn short_log() -> Vec<Event> {
        let nodes = names(&["n0", "n1"]);
        let mut e = vec![ev(
            0.0,
            EventKind::Start {
                cluster: "short".into(),
                seed: 1,
                nodes: nodes.clone(),
                duration_s: 8.0,
                faults: names(&["partition"]),
            },
        )];
        for n in &nodes {
            let tip = EventKind::Tip {
                node: n.clone(),
                height: 101,
                hash: "h101".into(),
                reorg_depth: 0,
            };
            e.push(ev(0.2, tip));
        }
        let fault = EventKind::Fault {
            step: 0,
            fault: FaultKind::Partition,
            nodes: nodes.clone(),
            detail: "{n0} | {n1}".into(),
        };
        e.push(ev(1.0, fault));
        for (t, seconds) in [(1.5, 0.05), (2.5, 0.08), (4.0, 0.11)] {
            let hash = format!("b{t}");
            e.push(ev(t, EventKind::Propagation { hash, seconds }));
        }
        let end = EventKind::FaultEnd {
            step: 0,
            fault: FaultKind::Partition,
            nodes,
        };
        e.push(ev(3.0, end));
        e.push(ev(
            3.12,
            EventKind::Converged {
                step: 0,
                seconds: 0.12,
            },
        ));
        e.push(ev(
            8.0,
            EventKind::End {
                ok: true,
                reason: None,
            },
        ));
        e
    }

    /// The tick labels of every axis of every plot in `html`, as plotters places them: a vertical
    /// axis's right-aligned at one x, a horizontal axis's hanging below one y (numbers and clock times
    /// only; a bar's count above it is neither).
    fn axes(html: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for plot in html.split("<svg").skip(1) {
            let mut axes: BTreeMap<(bool, String), Vec<String>> = BTreeMap::new();
            for text in plot.split("<text").skip(1) {
                let attr = |name: &str| {
                    let rest = text.split(&format!(" {name}=\"")).nth(1)?;
                    Some(rest.split('"').next()?.to_string())
                };
                let label = text
                    .split('>')
                    .nth(1)
                    .unwrap_or("")
                    .split('<')
                    .next()
                    .unwrap_or("");
                let label = label.trim();
                let tick = label.parse::<f64>().is_ok()
                    || label.trim_end_matches('s').parse::<u64>().is_ok()
                    || label.split(':').all(|p| p.parse::<u64>().is_ok());
                if label.is_empty() || !tick {
                    continue;
                }
                let axis = match (attr("text-anchor").as_deref(), attr("dy").as_deref()) {
                    (Some("end"), Some("0.5ex")) => attr("x").map(|x| (true, x)),
                    (Some("middle"), Some("0.76em")) => attr("y").map(|y| (false, y)),
                    _ => None,
                };
                if let Some(axis) = axis {
                    axes.entry(axis).or_default().push(label.to_string());
                }
            }
            out.extend(axes.into_values().filter(|l| l.len() > 1));
        }
        out
    }

    #[test]
    fn every_axis_of_a_short_runs_report_has_distinct_ticks() {
        let short = axes(&html(&short_log()));
        assert!(short.len() >= 5, "{short:?}");
        // The small seconds show as hundredths: the propagation axis reads 0.02, 0.04, ….
        assert!(
            short.iter().any(|l| l.contains(&"0.04".to_string())),
            "{short:?}"
        );
        // The long run's axes too.
        for labels in short.iter().chain(&axes(&html(&small_log()))) {
            let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
            assert_eq!(distinct.len(), labels.len(), "repeated ticks: {labels:?}");
        }
    }

    #[test]
    fn value_labels_take_the_fewest_decimals_that_keep_ticks_apart() {
        let small = value_labels(0.0..0.135);
        assert_eq!(
            [0.0, 0.02, 0.04].map(|v| small(&v)),
            ["0.00", "0.02", "0.04"]
        );
        let large = value_labels(0.0..140.0);
        assert_eq!([0.0, 20.0, 40.0].map(|v| large(&v)), ["0", "20", "40"]);
        assert_eq!(whole(&101.0), "101");
        assert_eq!(whole(&101.2), "");
    }

    fn plots(html: &str) -> usize {
        html.matches("<svg").count()
    }

    #[test]
    fn the_report_fetches_nothing_and_draws_every_plot() {
        let html = html(&small_log());
        assert!(html.starts_with("<!DOCTYPE html>"));
        let without_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!without_ns.contains("http://"), "an outside reference");
        assert!(!without_ns.contains("https://"), "an outside reference");
        assert!(!html.contains("<script"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("@import") && !html.contains("url("));
        // Heights, reorg depths, convergence, propagation, timeline.
        assert_eq!(plots(&html), 5);
        assert_eq!(html.matches("</svg>").count(), 5);
        // Every svg closes before the next opens.
        let mut depth = 0i32;
        for piece in html.split("<svg").skip(1) {
            depth += 1;
            depth -= piece.matches("</svg>").count() as i32;
            assert_eq!(depth, 0);
        }
        for tag in ["section", "table", "tr", "td", "div", "p"] {
            assert_eq!(
                html.matches(&format!("<{tag}>")).count()
                    + html.matches(&format!("<{tag} ")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "<{tag}> unbalanced"
            );
        }
        assert!(html.contains("FAIL"));
        assert!(html.contains("1 invariant check failed"));
    }

    #[test]
    fn text_from_the_log_is_escaped() {
        let html = html(&small_log());
        assert!(html.contains("regbox soak: tri &lt;&amp;&gt;"));
        assert!(!html.contains("tri <&>"));
        assert!(html.contains("n2 lacks 1 (&lt;tx&gt;)"));
        assert!(html.contains("{n0} | {n1, n2}"));
    }

    #[test]
    fn empty_data_says_none_instead_of_a_broken_plot() {
        let html = html(&[]);
        assert_eq!(plots(&html), 0);
        assert!(html.contains("none — no tip or block was logged"));
        assert!(html.contains("none — no node reorganised its chain"));
        assert!(html.contains("none — no fault was injected"));
        assert!(html.contains("none — no block propagation was measured"));
        assert!(html.contains("none — no invariant was checked"));
        assert!(html.contains("NO END"));

        // Heights and faults but no reorg: four plots and a "none".
        let log: Vec<Event> = (small_log().into_iter())
            .filter(|e| !matches!(e.kind, EventKind::Tip { reorg_depth, .. } if reorg_depth > 0))
            .collect();
        let html = super::html(&log);
        assert_eq!(plots(&html), 4);
        assert!(html.contains("none — no node reorganised its chain"));
    }

    /// A simulated run over `n` nodes with the first `faults` steps of a real schedule: blocks on
    /// random miners, partitions that fork the chain and reorg the losing side when they heal, one
    /// failed invariant.
    fn sample_run(n: usize, faults: usize, seed: u64) -> Vec<Event> {
        use crate::core::rng::SplitMix64;
        use crate::core::soak::{schedule, ScheduleSpec, StepDetail};
        use std::time::Duration;

        let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let spec = ScheduleSpec {
            seed,
            duration: Duration::from_secs(1800),
            faults: [[FaultKind::Partition; 3].as_slice(), &FaultKind::ALL[..6]].concat(),
            mean_gap: Duration::from_secs(70),
            mean_fault: Duration::from_secs(110),
        };
        let steps: Vec<_> = schedule(&spec, &nodes, &[])
            .into_iter()
            .take(faults)
            .collect();
        let mut rng = SplitMix64(seed);
        let mut chains: Vec<Vec<String>> =
            vec![(0..=100).map(|h| format!("{h:064x}")).collect(); n];
        let mut e = vec![ev(
            0.0,
            EventKind::Start {
                cluster: "soak-demo".into(),
                seed,
                nodes: nodes.clone(),
                duration_s: 1800.0,
                faults: FaultKind::NAMES.iter().map(|s| s.to_string()).collect(),
            },
        )];
        let active = |t: f64| {
            steps
                .iter()
                .find(|s| s.at.as_secs_f64() <= t && t < s.end().as_secs_f64())
        };
        let group = |t: f64, i: usize| match active(t).map(|s| &s.detail) {
            Some(StepDetail::Partition { groups }) => groups
                .iter()
                .position(|g| g.contains(&nodes[i]))
                .unwrap_or(0),
            _ => 0,
        };
        let down = |t: f64, i: usize| {
            active(t).is_some_and(|s| {
                matches!(s.kind, FaultKind::Kill | FaultKind::Pause) && s.targets[0] == nodes[i]
            })
        };
        let slow = |t: f64, i: usize| {
            active(t).is_some_and(|s| s.kind == FaultKind::Netem && s.targets.contains(&nodes[i]))
        };
        // Adopting another chain: the blocks of the old one left behind.
        fn adopt(chain: &mut Vec<String>, new: &[String]) -> u64 {
            let common = chain.iter().zip(new).take_while(|(a, b)| a == b).count();
            let depth = (chain.len() - common) as u64;
            *chain = new.to_vec();
            depth
        }
        let tip = |t: f64, i: usize, chain: &[String], reorg_depth: u64| {
            ev(
                t,
                EventKind::Tip {
                    node: nodes[i].clone(),
                    height: chain.len() as u64 - 1,
                    hash: chain.last().cloned().unwrap_or_default(),
                    reorg_depth,
                },
            )
        };
        let mut moments: Vec<(f64, Option<usize>)> = steps
            .iter()
            .map(|s| (s.end().as_secs_f64(), Some(s.index)))
            .collect();
        let mut t = 0.0;
        loop {
            t += 12.0 + rng.unit() * 24.0;
            if t > 1790.0 {
                break;
            }
            moments.push((t, None));
        }
        moments.sort_by(|a, b| a.0.total_cmp(&b.0));
        for s in &steps {
            e.push(ev(
                s.at.as_secs_f64(),
                EventKind::Fault {
                    step: s.index,
                    fault: s.kind,
                    nodes: s.targets.clone(),
                    detail: s.describe(),
                },
            ));
        }
        for (t, step) in moments {
            match step {
                None => {
                    let up: Vec<usize> = (0..n).filter(|i| !down(t, *i)).collect();
                    let m = up[rng.index(up.len())];
                    let hash = format!("{:016x}{:016x}", rng.next(), rng.next());
                    chains[m].push(hash.clone());
                    let height = chains[m].len() as u64 - 1;
                    e.push(ev(
                        t,
                        EventKind::Block {
                            node: nodes[m].clone(),
                            height,
                            hash: hash.clone(),
                        },
                    ));
                    e.push(tip(t, m, &chains[m], 0));
                    let mut last = 0.0f64;
                    for &i in &up {
                        if i == m
                            || group(t, i) != group(t, m)
                            || chains[i].len() >= chains[m].len()
                        {
                            continue;
                        }
                        let mut d = 0.15 + rng.unit() * 0.5;
                        if slow(t, i) || slow(t, m) {
                            d += 1.0 + rng.unit() * 3.0;
                        }
                        last = last.max(d);
                        let new = chains[m].clone();
                        let depth = adopt(&mut chains[i], &new);
                        e.push(tip(t + d, i, &chains[i], depth));
                    }
                    if up.len() == n && (0..n).all(|i| chains[i] == chains[m]) {
                        e.push(ev(
                            t + last,
                            EventKind::Propagation {
                                hash,
                                seconds: last,
                            },
                        ));
                    }
                    if rng.below(2) == 0 {
                        let (a, b) = (rng.index(n), rng.index(n));
                        let txid = format!("{:016x}", rng.next());
                        e.push(ev(
                            t + 1.0,
                            EventKind::Tx {
                                from: nodes[a].clone(),
                                to: nodes[b].clone(),
                                txid,
                            },
                        ));
                    }
                }
                Some(step) => {
                    let s = &steps[step];
                    e.push(ev(
                        t,
                        EventKind::FaultEnd {
                            step,
                            fault: s.kind,
                            nodes: s.targets.clone(),
                        },
                    ));
                    let best = (0..n)
                        .max_by_key(|i| (chains[*i].len(), std::cmp::Reverse(*i)))
                        .unwrap_or(0);
                    let new = chains[best].clone();
                    let mut last = 0.3f64;
                    for (i, chain) in chains.iter_mut().enumerate() {
                        if *chain != new {
                            let d = 0.5
                                + rng.unit() * if s.kind == FaultKind::Kill { 12.0 } else { 4.0 };
                            last = last.max(d);
                            let depth = adopt(chain, &new);
                            e.push(tip(t + d, i, chain, depth));
                        }
                    }
                    e.push(ev(
                        t + last,
                        EventKind::Converged {
                            step,
                            seconds: last,
                        },
                    ));
                    for name in ["converged", "not_stuck", "mempools_agree", "no_crash"] {
                        let bad = step == 5 && name == "mempools_agree";
                        e.push(ev(
                            t + last,
                            EventKind::Invariant {
                                step: Some(step),
                                name: name.into(),
                                ok: !bad,
                                nodes: if bad { names(&["n3"]) } else { vec![] },
                                detail: if bad {
                                    "n3 lacks 2 (9f2c41d07ab3…, 03be6e1c55d0…), against the 7 transaction(s) most nodes hold".into()
                                } else {
                                    format!("{n} running node(s) agree")
                                },
                            },
                        ));
                    }
                }
            }
        }
        e.push(ev(
            1800.0,
            EventKind::End {
                ok: false,
                reason: Some("1 invariant check failed: mempools_agree after step 5".into()),
            },
        ));
        e.sort_by(|a, b| a.t.total_cmp(&b.t));
        e
    }

    /// Writes the sample report to `regbox-sample-report.html` in the temporary directory, to look at.
    #[test]
    fn a_sample_run_renders_every_plot() {
        // Seed 2's first eight faults include a partition that reorganises a side, and a throttle.
        let log = sample_run(5, 8, 2);
        let s = summarize(&log);
        assert_eq!(s.fault_intervals.len(), 8);
        assert!(s
            .fault_intervals
            .iter()
            .any(|f| f.fault == FaultKind::Throttle));
        assert!(!s.reorgs.is_empty());
        assert_eq!(s.failed_invariants(), 1);
        let html = html(&log);
        assert_eq!(plots(&html), 5);
        let path = std::env::temp_dir().join("regbox-sample-report.html");
        std::fs::write(&path, &html).unwrap();
    }
}
