//! A standalone SVG drawing of a topology, laid out by the project itself: a deterministic
//! Fruchterman–Reingold force layout for small graphs and a circle for large ones.

use std::fmt::Write as _;

use crate::core::topology::graphio::xml_escape;
use crate::core::topology::Edge;

/// Width and height of the drawing, in pixels.
pub const SIZE: f64 = 800.0;

/// Space kept free around the layout, for labels.
const MARGIN: f64 = 60.0;

/// Graphs with more nodes are drawn on a circle, without labels.
pub const FORCE_LIMIT: usize = 150;

/// Force-layout rounds; the step size cools linearly to zero over them.
const ITERATIONS: usize = 300;

const NODE_FILL: &str = "#4c78a8";
const HIGHLIGHT_FILL: &str = "#e45756";

/// An SVG document (800×800) of the graph: edges as lines, nodes as circles with their names as
/// labels and tooltips (labels only up to [`FORCE_LIMIT`] nodes). The nodes in `highlight` are
/// filled in another colour. Edges naming a node outside `names`, and such highlight indices, are
/// left out. The same input always gives the same document.
pub fn render(names: &[String], edges: &[Edge], highlight: Option<&[usize]>) -> String {
    let n = names.len();
    let pairs: Vec<(usize, usize)> = edges
        .iter()
        .filter(|e| e.from < n && e.to < n)
        .map(|e| (e.from, e.to))
        .collect();
    let points = layout(n, &pairs);
    let labels = n <= FORCE_LIMIT;
    let radius = if labels { 7.0 } else { 3.5 };
    let mut marked = vec![false; n];
    for &i in highlight.unwrap_or(&[]) {
        if let Some(m) = marked.get_mut(i) {
            *m = true;
        }
    }
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE}\" height=\"{SIZE}\" \
         viewBox=\"0 0 {SIZE} {SIZE}\">\n  <rect width=\"{SIZE}\" height=\"{SIZE}\" fill=\"white\"/>\n"
    );
    let opacity = if labels { 1.0 } else { 0.4 };
    out += &format!("  <g stroke=\"#9aa0a6\" stroke-width=\"1\" stroke-opacity=\"{opacity}\">\n");
    for &(a, b) in &pairs {
        let ((x1, y1), (x2, y2)) = (points[a], points[b]);
        let _ = writeln!(
            out,
            "    <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"/>"
        );
    }
    out += "  </g>\n  <g stroke=\"#333333\" stroke-width=\"1\">\n";
    for (i, &(x, y)) in points.iter().enumerate() {
        let fill = if marked[i] { HIGHLIGHT_FILL } else { NODE_FILL };
        let _ = writeln!(
            out,
            "    <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{fill}\"><title>{}</title></circle>",
            xml_escape(&names[i])
        );
    }
    out += "  </g>\n";
    if labels {
        out += "  <g font-family=\"sans-serif\" font-size=\"11\" fill=\"#222222\">\n";
        for (name, &(x, y)) in names.iter().zip(&points) {
            let (x, y) = (x + radius + 2.0, y + 4.0);
            let _ = writeln!(
                out,
                "    <text x=\"{x:.1}\" y=\"{y:.1}\">{}</text>",
                xml_escape(name)
            );
        }
        out += "  </g>\n";
    }
    out + "</svg>\n"
}

/// Node positions inside the 800×800 drawing area, `MARGIN` from every side (the operator's page
/// draws the same layout).
pub fn layout(n: usize, edges: &[(usize, usize)]) -> Vec<(f64, f64)> {
    let points = if n <= FORCE_LIMIT {
        force(n, edges)
    } else {
        circle(n)
    };
    fit(&points)
}

/// `n` points evenly on the unit circle, the first at the top.
fn circle(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let angle = std::f64::consts::TAU * i as f64 / n as f64;
            (angle.sin(), -angle.cos())
        })
        .collect()
}

/// Fruchterman–Reingold (1991) in the unit square: nodes repel with k²/d, edges attract with d²/k,
/// and each round moves a node along its net force by at most the temperature, which cools
/// linearly. Starts from the circle, so nothing is random.
fn force(n: usize, edges: &[(usize, usize)]) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = circle(n).iter().map(|&(x, y)| (x / 2.0, y / 2.0)).collect();
    if n < 2 {
        return points;
    }
    let k = (1.0 / n as f64).sqrt();
    let mut moves = vec![(0.0, 0.0); n];
    for round in 0..ITERATIONS {
        moves.fill((0.0, 0.0));
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy, d) = between(points[i], points[j]);
                let f = k * k / d;
                push(&mut moves, i, j, dx / d * f, dy / d * f);
            }
        }
        for &(a, b) in edges {
            let (dx, dy, d) = between(points[a], points[b]);
            let f = d * d / k;
            push(&mut moves, a, b, -dx / d * f, -dy / d * f);
        }
        let temperature = 0.1 * (1.0 - round as f64 / ITERATIONS as f64);
        for (p, &(mx, my)) in points.iter_mut().zip(&moves) {
            let length = (mx * mx + my * my).sqrt();
            if length > 0.0 {
                let step = length.min(temperature) / length;
                p.0 += mx * step;
                p.1 += my * step;
            }
        }
    }
    points
}

/// The vector from `b` to `a` and its length, at least 0.01 so that forces stay finite.
fn between(a: (f64, f64), b: (f64, f64)) -> (f64, f64, f64) {
    let (dx, dy) = (a.0 - b.0, a.1 - b.1);
    (dx, dy, (dx * dx + dy * dy).sqrt().max(0.01))
}

/// Moves `a` by (fx, fy) and `b` by the opposite.
fn push(moves: &mut [(f64, f64)], a: usize, b: usize, fx: f64, fy: f64) {
    moves[a].0 += fx;
    moves[a].1 += fy;
    moves[b].0 -= fx;
    moves[b].1 -= fy;
}

/// Scales and centres the points into the drawing area, keeping their proportions.
fn fit(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let (mut low, mut high) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
    for &(x, y) in points {
        low = (low.0.min(x), low.1.min(y));
        high = (high.0.max(x), high.1.max(y));
    }
    let span = (high.0 - low.0).max(high.1 - low.1);
    let room = SIZE - 2.0 * MARGIN;
    if !span.is_finite() || span < 1e-9 {
        return vec![(SIZE / 2.0, SIZE / 2.0); points.len()];
    }
    let scale = room / span;
    let offset = (
        MARGIN + (room - (high.0 - low.0) * scale) / 2.0,
        MARGIN + (room - (high.1 - low.1) * scale) / 2.0,
    );
    points
        .iter()
        .map(|&(x, y)| {
            (
                offset.0 + (x - low.0) * scale,
                offset.1 + (y - low.1) * scale,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::topology::generators::Generator;
    use crate::core::topology::{generate, Kind};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn number(node: &roxmltree::Node, attribute: &str) -> f64 {
        node.attribute(attribute).unwrap().parse().unwrap()
    }

    /// Parses the drawing and checks one circle per node, one line per edge, everything inside.
    fn check(names: &[String], edges: &[Edge]) -> String {
        let svg = render(names, edges, None);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let tagged = |tag: &str| doc.descendants().filter(|d| d.has_tag_name(tag)).count();
        assert_eq!(tagged("circle"), names.len());
        assert_eq!(tagged("line"), edges.len());
        for node in doc.descendants().filter(|d| d.is_element()) {
            for a in ["cx", "cy", "x1", "y1", "x2", "y2"] {
                if node.attribute(a).is_some() {
                    let v = number(&node, a);
                    assert!((MARGIN..=SIZE - MARGIN).contains(&v), "{a}={v}");
                }
            }
        }
        assert_eq!(svg, render(names, edges, None), "not deterministic");
        svg
    }

    #[test]
    fn small_graphs_are_drawn_with_labels() {
        for n in [0, 1, 2, 3, 10] {
            let svg = check(&names(n), &generate(Kind::Ring, n));
            assert_eq!(svg.matches("<text ").count(), n);
        }
        for g in [
            Generator::Tree { k: 2 },
            Generator::Random {
                degree: 4.0,
                seed: 3,
            },
            Generator::Grid {
                width: 5,
                torus: false,
            },
        ] {
            check(&names(60), &g.edges(60).unwrap());
        }
        // Two components and an isolated node.
        check(&names(5), &[Edge::new(0, 1), Edge::new(2, 3)]);
    }

    #[test]
    fn large_graphs_are_drawn_on_a_circle_without_labels() {
        let n = FORCE_LIMIT + 1;
        let svg = check(&names(n), &generate(Kind::Ring, n));
        assert!(!svg.contains("<text "));
    }

    #[test]
    fn force_layout_spreads_the_nodes() {
        let n = 40;
        let edges = Generator::Tree { k: 3 }.edges(n).unwrap();
        let pairs: Vec<_> = edges.iter().map(|e| (e.from, e.to)).collect();
        let points = layout(n, &pairs);
        let mut closest = f64::MAX;
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (points[i].0 - points[j].0, points[i].1 - points[j].1);
                closest = closest.min((dx * dx + dy * dy).sqrt());
            }
        }
        assert!(closest > 15.0, "two nodes {closest:.1}px apart");
        // Neighbours end up closer than the average pair.
        let mean = |list: &[(usize, usize)]| {
            list.iter()
                .map(|&(a, b)| {
                    let (dx, dy) = (points[a].0 - points[b].0, points[a].1 - points[b].1);
                    (dx * dx + dy * dy).sqrt()
                })
                .sum::<f64>()
                / list.len() as f64
        };
        let all: Vec<_> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect();
        assert!(mean(&pairs) < mean(&all) / 2.0);
    }

    #[test]
    fn highlight_and_escaping() {
        let names = vec!["a<&>\"'".to_owned(), "b".to_owned(), "c".to_owned()];
        let svg = render(
            &names,
            &[Edge::new(0, 1), Edge::new(1, 9)],
            Some(&[0, 2, 7]),
        );
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let fills: Vec<&str> = doc
            .descendants()
            .filter(|d| d.has_tag_name("circle"))
            .filter_map(|c| c.attribute("fill"))
            .collect();
        assert_eq!(fills, [HIGHLIGHT_FILL, NODE_FILL, HIGHLIGHT_FILL]);
        let text = doc.descendants().find(|d| d.has_tag_name("text")).unwrap();
        assert_eq!(text.text(), Some("a<&>\"'"));
        assert_eq!(
            doc.descendants().filter(|d| d.has_tag_name("line")).count(),
            1
        );
    }
}
