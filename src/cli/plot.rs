//! The plots of `measure propagation` (plotters): the arrival CDF and arrival time against hops, side
//! by side, as SVG or PNG. Text is drawn with the bundled DejaVu Sans (`assets/`), so no system font
//! or fontconfig is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::core::chain::propagation;
use crate::engine::measure::Measurement;

/// The picture's size in pixels (SVG user units).
const SIZE: (u32, u32) = (1200, 480);
pub(super) const FONT: &str = "sans-serif";
const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Makes the bundled font the one plotters draws `sans-serif` with.
pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_err() {
            unreachable!("the bundled font parses");
        }
    });
}

/// Writes the plots as SVG to `path`.
pub fn svg(m: &Measurement, path: &Path) -> Result<(), String> {
    register_font();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    draw(&root, m).map_err(|e| format!("draw {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Writes the plots as PNG to `path` (whatever its extension).
pub fn png(m: &Measurement, path: &Path) -> Result<(), String> {
    register_font();
    let (w, h) = SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        draw(&root, m).map_err(|e| format!("draw {}: {e}", path.display()))?;
        root.present()
            .map_err(|e| format!("draw {}: {e}", path.display()))?;
    }
    image::save_buffer_with_format(
        path,
        &pixels,
        w,
        h,
        image::ColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| format!("write {}: {e}", path.display()))
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, m: &Measurement) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let what = format!(
        "{} from {}, {} round(s)",
        match m.kind {
            propagation::Kind::Block => "blocks",
            propagation::Kind::Tx => "transactions",
        },
        m.origin,
        m.rounds.len()
    );
    draw_cdf(&left, m, &what)?;
    draw_hops(&right, m, &what)
}

/// The empirical CDF of receiver arrivals as a step line.
fn draw_cdf<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: &Measurement,
    what: &str,
) -> Drawn<DB> {
    let cdf = propagation::cdf(&m.rounds);
    let x_max = cdf.last().map_or(1.0, |p| p.0).max(1.0) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Arrival CDF: {what}"), (FONT, 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..1.02)?;
    chart
        .configure_mesh()
        .x_desc(format!("ms after it was born on {}", m.origin))
        .y_desc("fraction of nodes")
        .label_style((FONT, 13))
        .draw()?;
    let mut steps = vec![(0.0, 0.0)];
    for &(ms, fraction) in &cdf {
        let below = steps.last().map_or(0.0, |p| p.1);
        steps.push((ms, below));
        steps.push((ms, fraction));
    }
    chart.draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))?;
    Ok(())
}

/// Every arrival as a dot at its hop distance (rounds side by side), the per-hop means as a line,
/// and for blocks the per-hop mean of when the header was first seen.
fn draw_hops<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: &Measurement,
    what: &str,
) -> Drawn<DB> {
    let points = propagation::points(&m.rounds);
    let hops_max = points.iter().map(|p| p.1).max().unwrap_or(0);
    let ms_max = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Arrival vs hops: {what}"), (FONT, 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..hops_max as f64 + 0.5, 0f64..ms_max)?;
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{}", x.round())
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(hops_max + 2)
        .x_label_formatter(&whole)
        .x_desc(format!("hops from {}", m.origin))
        .y_desc(format!("ms after it was born on {}", m.origin))
        .label_style((FONT, 13))
        .draw()?;
    // Each round a little to the side of the hop's column, so rounds do not hide each other.
    let rounds = m.rounds.len().max(1) as f64;
    let offset = |round: usize| (round as f64 + 0.5) / rounds * 0.4 - 0.2;
    chart.draw_series(points.iter().map(|&(round, hops, ms)| {
        Circle::new((hops as f64 + offset(round), ms), 3, BLUE.mix(0.6).filled())
    }))?;
    let means = m.summary.per_hop.iter().map(|h| (h.hops as f64, h.mean_ms));
    chart
        .draw_series(LineSeries::new(means, RED.stroke_width(2)))?
        .label("mean per hop")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    // Blocks: when the header was first seen, i.e. relay alone, without the node's validation.
    let headers: Vec<(f64, f64)> = (m.summary.per_hop.iter())
        .filter_map(|h| Some((h.hops as f64, h.mean_header_ms?)))
        .collect();
    if !headers.is_empty() {
        let green = GREEN.mix(0.9).stroke_width(2);
        chart
            .draw_series(LineSeries::new(headers, green))?
            .label("mean per hop, header seen")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], green));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
