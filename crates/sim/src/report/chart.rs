//! Hand-written SVG charts: lines over time and stacked areas, no dependency, no script.
//!
//! Each chart is a string of SVG sized by [`WIDTH`] and [`HEIGHT`], with hour ticks on the
//! time axis and percentage ticks on the value axis, readable offline in any browser.

use std::fmt::Write as _;

use crate::clock::{HOUR, format_time};
use crate::report::html::esc;

/// Width of a chart, in SVG units.
pub const WIDTH: f64 = 960.0;
/// Height of a chart.
pub const HEIGHT: f64 = 280.0;
/// Margins: left (value labels), right (legend room), top, bottom (time labels).
const MARGIN: (f64, f64, f64, f64) = (56.0, 16.0, 28.0, 44.0);
/// Most annotations drawn (vertical marks with a label).
pub const MAX_ANNOTATIONS: usize = 12;

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// `(virtual ms, value)`, in time order.
    pub points: Vec<(u64, f64)>,
    /// Dashed (a reference line).
    pub dashed: bool,
}

/// One band of a stacked-area chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// One value per time point (the same points for every band).
    pub values: Vec<f64>,
}

struct Frame {
    start: u64,
    end: u64,
    y_max: f64,
}

// === impl Frame ===

impl Frame {
    fn x(&self, at: u64) -> f64 {
        let span = self.end.saturating_sub(self.start).max(1) as f64;
        let w = WIDTH - MARGIN.0 - MARGIN.1;
        MARGIN.0 + w * (at.saturating_sub(self.start) as f64 / span).min(1.0)
    }

    fn y(&self, v: f64) -> f64 {
        let h = HEIGHT - MARGIN.2 - MARGIN.3;
        let v = if self.y_max > 0.0 {
            (v / self.y_max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        MARGIN.2 + h * (1.0 - v)
    }

    /// Axes, grid, hour ticks, value ticks (as percentages of 1.0 when `percent`).
    fn axes(&self, out: &mut String, title: &str, percent: bool) {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="18" class="title">{}</text>"##,
            MARGIN.0,
            esc(title)
        );
        for i in 0..=4 {
            let v = self.y_max * f64::from(i) / 4.0;
            let y = self.y(v);
            let label = if percent {
                format!("{:.0}%", v * 100.0)
            } else {
                format!("{v:.0}")
            };
            let _ = write!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{label}</text>"##,
                MARGIN.0,
                WIDTH - MARGIN.1,
                MARGIN.0 - 6.0,
                y + 4.0
            );
        }
        let mut t = self.start.div_ceil(HOUR) * HOUR;
        while t <= self.end {
            let x = self.x(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
                MARGIN.2,
                HEIGHT - MARGIN.3,
                HEIGHT - MARGIN.3 + 16.0,
                format_time(t)
            );
            t += HOUR;
        }
    }

    fn annotations(&self, out: &mut String, marks: &[(u64, String)]) {
        for (i, (at, label)) in marks.iter().take(MAX_ANNOTATIONS).enumerate() {
            let x = self.x(*at);
            let y = HEIGHT - 6.0 - if i % 2 == 0 { 0.0 } else { 11.0 };
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" class="mark"/><text x="{x:.1}" y="{y:.1}" class="mark-label" text-anchor="middle">{}</text>"##,
                MARGIN.2,
                HEIGHT - MARGIN.3,
                esc(label)
            );
        }
    }
}

/// A line chart of shares over `[start, end]`; `y_max` of 0 picks the largest value (at
/// least 1%).
pub fn lines(
    title: &str,
    series: &[Series],
    start: u64,
    end: u64,
    y_max: f64,
    marks: &[(u64, String)],
) -> String {
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 {
        y_max
    } else {
        nice(top.max(0.01))
    };
    let f = Frame { start, end, y_max };
    let mut out = open();
    f.axes(&mut out, title, true);
    f.annotations(&mut out, marks);
    for s in series {
        let mut d = String::new();
        for (i, (at, v)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                f.x(*at),
                f.y(*v)
            );
        }
        let _ = write!(
            out,
            r##"<path d="{d}" fill="none" stroke="{}" stroke-width="2"{}/>"##,
            esc(&s.color),
            if s.dashed {
                r#" stroke-dasharray="5 4""#
            } else {
                ""
            }
        );
    }
    legend(
        &mut out,
        series.iter().map(|s| (s.name.as_str(), s.color.as_str())),
    );
    out.push_str("</svg>");
    out
}

/// A stacked-area chart of counts at `times` (one value per band per time).
pub fn stacked(title: &str, bands: &[Band], times: &[u64], start: u64, end: u64) -> String {
    let totals: Vec<f64> = (0..times.len())
        .map(|i| bands.iter().filter_map(|b| b.values.get(i)).sum())
        .collect();
    let y_max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let f = Frame { start, end, y_max };
    let mut out = open();
    f.axes(&mut out, title, false);
    let mut base = vec![0.0f64; times.len()];
    for b in bands {
        let top: Vec<f64> = base
            .iter()
            .zip(b.values.iter().chain(std::iter::repeat(&0.0)))
            .map(|(lo, v)| lo + v)
            .collect();
        let mut d = String::new();
        for (i, (at, v)) in times.iter().zip(&top).enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                f.x(*at),
                f.y(*v)
            );
        }
        for (at, v) in times.iter().zip(&base).rev() {
            let _ = write!(d, " L{:.1},{:.1}", f.x(*at), f.y(*v));
        }
        let _ = write!(
            out,
            r##"<path d="{d} Z" fill="{}" stroke="none"/>"##,
            esc(&b.color)
        );
        base = top;
    }
    legend(
        &mut out,
        bands.iter().map(|b| (b.name.as_str(), b.color.as_str())),
    );
    out.push_str("</svg>");
    out
}

fn open() -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img">"##
    )
}

fn legend<'a>(out: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = MARGIN.0 + 260.0;
    for (name, color) in items {
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="9" width="10" height="10" fill="{}"/><text x="{:.1}" y="18" class="legend">{}</text>"##,
            esc(color),
            x + 14.0,
            esc(name)
        );
        x += 22.0 + 6.5 * name.chars().count() as f64;
    }
}

/// The smallest of 1, 2, 5 × a power of ten at or above `v`.
fn nice(v: f64) -> f64 {
    let mut step = 0.001;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if step * m >= v {
                return step * m;
            }
        }
        step *= 10.0;
        if step > 1e12 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MINUTE;

    #[test]
    fn a_line_chart_is_svg_with_its_series_and_escaped_text() {
        let s = Series {
            name: "naive <FL2>".into(),
            color: "#c33".into(),
            points: vec![(11 * HOUR, 0.0), (12 * HOUR, 0.5), (13 * HOUR, 0.25)],
            dashed: false,
        };
        let svg = lines(
            "failed & blocked",
            &[s],
            11 * HOUR,
            13 * HOUR,
            0.0,
            &[(11 * HOUR + 5 * MINUTE, "11:05 change".into())],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("naive &lt;FL2&gt;"));
        assert!(svg.contains("failed &amp; blocked"));
        assert!(svg.contains(">12:00<"));
        assert!(svg.contains("<path d=\"M"));
    }

    #[test]
    fn stacked_bands_close_their_paths() {
        let svg = stacked(
            "versions",
            &[
                Band {
                    name: "v1".into(),
                    color: "#4a4".into(),
                    values: vec![10.0, 5.0],
                },
                Band {
                    name: "down".into(),
                    color: "#c33".into(),
                    values: vec![0.0, 5.0],
                },
            ],
            &[11 * HOUR, 12 * HOUR],
            11 * HOUR,
            12 * HOUR,
        );
        assert_eq!(svg.matches(" Z\"").count(), 2);
    }

    #[test]
    fn nice_rounds_up_to_1_2_5() {
        assert_eq!(nice(0.7), 1.0);
        assert_eq!(nice(0.03), 0.05);
        assert!((nice(0.0015) - 0.002).abs() < 1e-12);
    }
}
