//! PURE: line charts as inline SVG polylines (no script, no library): each
//! series is one `<polyline>` scaled into the plot area, with the axes'
//! ranges written as text.

use std::fmt::Write as _;

use super::html::esc;

/// One line: (x, y) points in data units, in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// CSS class (colour) of the line: "c" canary, "b" baseline.
    pub class: String,
    pub points: Vec<(f64, f64)>,
}

fn colour(class: &str) -> &'static str {
    match class {
        "c" => "#c0262d",
        "b" => "#1f5fbf",
        _ => "#555",
    }
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// An SVG chart of `series`; the x and y ranges are the data's unless given.
/// Non-finite values break nothing: they are left out.
pub fn line_chart(
    series: &[Series],
    width: u32,
    height: u32,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let (left, right, top, bottom) = (56.0, 8.0, 8.0, 18.0);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = x_range
        .or_else(|| range(all().map(|p| p.0)))
        .unwrap_or((0.0, 1.0));
    let (mut y0, mut y1) = y_range
        .or_else(|| range(all().map(|p| p.1)))
        .unwrap_or((0.0, 1.0));
    if y_range.is_none() {
        // Some air, and a flat line in the middle rather than on an edge.
        let pad = if y1 > y0 {
            (y1 - y0) * 0.08
        } else {
            y0.abs().max(1.0) * 0.1
        };
        y0 -= pad;
        y1 += pad;
    }
    let dx = if x1 > x0 { x1 - x0 } else { 1.0 };
    let dy = if y1 > y0 { y1 - y0 } else { 1.0 };
    let px = |x: f64| left + (x - x0) / dx * (w - left - right);
    let py = |y: f64| top + (1.0 - (y - y0) / dy) * (h - top - bottom);
    let mut out = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{yb}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"#999\"/>\
<text x=\"2\" y=\"{t}\" font-size=\"10\">{}</text><text x=\"2\" y=\"{yb}\" font-size=\"10\">{}</text>",
        esc(&label(y1)),
        esc(&label(y0)),
        yb = h - bottom,
        xr = w - right,
        t = top + 8.0,
    );
    for s in series {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        // Few points: dots too, so one point is visible.
        if pts.len() <= 60 {
            for p in &pts {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    out,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"{}\"/>",
                    colour(&s.class)
                );
            }
        }
        let _ = write!(
            out,
            "<polyline class=\"series {}\" data-label=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
            esc(&s.class),
            esc(&s.label),
            pts.len(),
            colour(&s.class),
            pts.join(" ")
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(class: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: class.into(),
            class: class.into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn scales_points_into_the_plot_area() {
        let svg = line_chart(
            &[series("c", &[(0.0, 0.0), (10.0, 100.0)])],
            200,
            100,
            None,
            Some((0.0, 100.0)),
        );
        // x 0 → left edge (56), x 10 → 200-8; y 0 → bottom (82), y 100 → top (8).
        assert!(svg.contains("points=\"56.0,82.0 192.0,8.0\""), "{svg}");
        assert!(svg.contains("data-points=\"2\""));
    }

    #[test]
    fn one_polyline_per_series_and_non_finite_points_left_out() {
        let svg = line_chart(
            &[
                series("c", &[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)]),
                series("b", &[(0.0, 2.0)]),
            ],
            300,
            120,
            None,
            None,
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("class=\"series c\" data-label=\"c\" data-points=\"2\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"series b\" data-label=\"b\" data-points=\"1\""),
            "{svg}"
        );
    }

    #[test]
    fn a_flat_or_empty_series_does_not_divide_by_zero() {
        let flat = line_chart(
            &[series("c", &[(0.0, 5.0), (0.0, 5.0)])],
            100,
            50,
            None,
            None,
        );
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
        let empty = line_chart(&[series("c", &[])], 100, 50, None, None);
        assert!(empty.contains("data-points=\"0\""));
    }
}
