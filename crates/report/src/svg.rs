//! A small SVG plotting kit for the HTML report: linear and log axes with readable ticks, and a
//! plot area that draws lines, points, whiskers, boxes and labels in data coordinates, then wraps
//! them in an inline `<svg>` with axes and gridlines.
//!
//! It draws exactly what the report's four charts need and nothing more; it is not a general
//! charting library, runs no script, and loads nothing. Every text it writes is HTML-escaped.

use std::fmt::Write as _;

/// Escapes text for HTML text nodes and quoted attributes alike (`& < > " '`).
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

/// Colours for arms, in arm order (Tableau 10: distinct, colour-blind friendly enough).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of the `i`-th arm.
pub(crate) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One axis: its range in data units, linear or log (base 10), how ticks print, and a label.
pub(crate) struct Axis {
    pub min: f64,
    pub max: f64,
    pub log: bool,
    pub label: String,
    pub format: fn(f64) -> String,
}

impl Axis {
    /// A linear axis over `[lo, hi]`, widened to round tick values.
    pub fn linear(lo: f64, hi: f64, label: &str, format: fn(f64) -> String) -> Axis {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (
                lo - 0.5_f64.max(lo.abs() * 0.1),
                hi + 0.5_f64.max(hi.abs() * 0.1),
            )
        };
        let step = nice_step((hi - lo) / 5.0);
        Axis {
            min: (lo / step).floor() * step,
            max: (hi / step).ceil() * step,
            log: false,
            label: label.to_owned(),
            format,
        }
    }

    /// A log axis over `[lo, hi]` (both positive), widened to whole powers of ten.
    pub fn log(lo: f64, hi: f64, label: &str, format: fn(f64) -> String) -> Axis {
        let lo = lo.max(f64::MIN_POSITIVE);
        let hi = hi.max(lo * 10.0);
        Axis {
            min: 10f64.powf(lo.log10().floor()),
            max: 10f64.powf(hi.log10().ceil()),
            log: true,
            label: label.to_owned(),
            format,
        }
    }

    /// Where `v` falls on the axis, from 0 (min) to 1 (max); clamped at the ends.
    pub fn fraction(&self, v: f64) -> f64 {
        let f = if self.log {
            let v = v.max(self.min);
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Tick positions in data units.
    pub fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.min.log10().round() as i32,
                self.max.log10().round() as i32,
            );
            let decades = (b - a).max(1);
            // At most about eight labelled ticks: skip decades on wide axes, add 2 and 5 on narrow.
            let stride = (decades + 7) / 8;
            let mut ticks = Vec::new();
            for e in (a..=b).step_by(stride.max(1) as usize) {
                let base = 10f64.powi(e);
                ticks.push(base);
                if decades <= 2 && e < b {
                    ticks.push(2.0 * base);
                    ticks.push(5.0 * base);
                }
            }
            ticks
        } else {
            let step = nice_step((self.max - self.min) / 5.0);
            let n = ((self.max - self.min) / step).round() as i64;
            (0..=n).map(|k| self.min + k as f64 * step).collect()
        }
    }
}

/// The round step (1, 2 or 5 × 10^k) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let base = 10f64.powf(raw.log10().floor());
    let m = raw / base;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// A plot being drawn: data-coordinate helpers that append SVG to `body`.
pub(crate) struct Plot {
    pub x: Axis,
    pub y: Axis,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    body: String,
}

impl Plot {
    pub fn new(x: Axis, y: Axis) -> Plot {
        Plot {
            x,
            y,
            width: 560.0,
            height: 360.0,
            left: 70.0,
            right: 34.0,
            top: 16.0,
            bottom: 48.0,
            body: String::new(),
        }
    }

    /// A taller plot with a wider left margin, for one row per category (box plots).
    pub fn with_rows(mut self, rows: usize, left: f64) -> Plot {
        self.height = (self.top + self.bottom + 34.0 * rows as f64).max(160.0);
        self.left = left;
        self
    }

    pub fn px(&self, x: f64) -> f64 {
        self.left + self.x.fraction(x) * (self.width - self.left - self.right)
    }

    pub fn py(&self, y: f64) -> f64 {
        self.height - self.bottom - self.y.fraction(y) * (self.height - self.top - self.bottom)
    }

    /// A polyline through data points; `dash` is an SVG dash array.
    pub fn line(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, dash: Option<&str>) {
        if points.len() < 2 {
            return;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let dash = dash.map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
        let _ = write!(
            self.body,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/>",
            pts.join(" ")
        );
    }

    /// A marker at a data point, with a tooltip.
    pub fn marker(&mut self, x: f64, y: f64, shape: Shape, fill: &str, tooltip: &str) {
        let (cx, cy) = (self.px(x), self.py(y));
        let title = format!("<title>{}</title>", esc(tooltip));
        let _ = match shape {
            Shape::Circle(r) => write!(
                self.body,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"1.5\">{title}</circle>"
            ),
            Shape::Diamond(r) => write!(
                self.body,
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"1.5\">{title}</polygon>",
                cx,
                cy - r,
                cx + r,
                cy,
                cx,
                cy + r,
                cx - r,
                cy
            ),
            Shape::Ring(r) => write!(
                self.body,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"none\" stroke=\"{fill}\" stroke-width=\"2\">{title}</circle>"
            ),
        };
    }

    /// A vertical error bar with caps, from `lo` to `hi` at `x`.
    pub fn whisker_y(&mut self, x: f64, lo: f64, hi: f64, stroke: &str) {
        let (cx, y0, y1) = (self.px(x), self.py(lo), self.py(hi));
        let _ = write!(
            self.body,
            "<path d=\"M{cx:.1},{y0:.1}V{y1:.1}M{:.1},{y0:.1}H{:.1}M{:.1},{y1:.1}H{:.1}\" stroke=\"{stroke}\" stroke-width=\"1.5\" fill=\"none\"/>",
            cx - 4.0,
            cx + 4.0,
            cx - 4.0,
            cx + 4.0
        );
    }

    /// A horizontal box plot on row `row` (0 at the top) of `rows`:
    /// whiskers `w_lo..w_hi`, box `q1..q3`, a line at the median.
    #[allow(clippy::too_many_arguments)]
    pub fn box_row(
        &mut self,
        row: usize,
        rows: usize,
        stats: [f64; 5],
        fill: &str,
        label: &str,
        tooltip: &str,
    ) {
        let band = (self.height - self.top - self.bottom) / rows.max(1) as f64;
        let cy = self.top + band * (row as f64 + 0.5);
        let h = (band * 0.5).min(18.0);
        let [w_lo, q1, med, q3, w_hi] = stats.map(|v| self.px(v));
        let _ = write!(
            self.body,
            "<g><title>{t}</title><path d=\"M{w_lo:.1},{cy:.1}H{q1:.1}M{q3:.1},{cy:.1}H{w_hi:.1}M{w_lo:.1},{a:.1}V{b:.1}M{w_hi:.1},{a:.1}V{b:.1}\" stroke=\"#555\" fill=\"none\"/>\
             <rect x=\"{q1:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h2:.1}\" fill=\"{fill}\" fill-opacity=\"0.55\" stroke=\"{fill}\"/>\
             <path d=\"M{med:.1},{top:.1}v{h2:.1}\" stroke=\"#222\" stroke-width=\"2\"/></g>\
             <text x=\"{lx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" class=\"lbl\">{label}</text>",
            t = esc(tooltip),
            a = cy - h / 4.0,
            b = cy + h / 4.0,
            top = cy - h / 2.0,
            w = (q3 - q1).max(1.0),
            h2 = h,
            lx = self.left - 8.0,
            ty = cy + 4.0,
            label = esc(label),
        );
    }

    /// A text label at a data point, nudged by `(dx, dy)` pixels.
    pub fn label(&mut self, x: f64, y: f64, dx: f64, dy: f64, text: &str, class: &str) {
        let anchor = if dx < 0.0 { "end" } else { "start" };
        let _ = write!(
            self.body,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" class=\"{class}\">{}</text>",
            self.px(x) + dx,
            self.py(y) + dy,
            esc(text)
        );
    }

    /// A full-height vertical rule at data `x`, labelled at its top (or its foot, so labels of
    /// neighbouring rules do not collide).
    pub fn vrule(&mut self, x: f64, stroke: &str, dash: &str, text: &str, at_top: bool) {
        let (px, y0, y1) = (self.px(x), self.py(self.y.min), self.py(self.y.max));
        let ty = if at_top { y1 + 12.0 } else { y0 - 6.0 };
        let _ = write!(
            self.body,
            "<path d=\"M{px:.1},{y0:.1}V{y1:.1}\" stroke=\"{stroke}\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{:.1}\" y=\"{ty:.1}\" class=\"note\">{}</text>",
            px + 4.0,
            esc(text)
        );
    }

    /// A full-width horizontal rule at data `y`, with a label at its right end.
    pub fn hrule(&mut self, y: f64, stroke: &str, dash: &str, text: &str) {
        let (py, x0, x1) = (self.py(y), self.px(self.x.min), self.px(self.x.max));
        let _ = write!(
            self.body,
            "<path d=\"M{x0:.1},{py:.1}H{x1:.1}\" stroke=\"{stroke}\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"note\">{}</text>",
            x1 - 4.0,
            py - 5.0,
            esc(text)
        );
    }

    /// The finished `<svg>`: gridlines and ticks (the y axis's unless `y_ticks` is false), axis
    /// labels, then what was drawn. `title` is the accessible name.
    pub fn finish(self, title: &str, y_ticks: bool) -> String {
        let mut s = String::new();
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.height - self.bottom, self.top);
        let _ = write!(
            s,
            "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
            w = self.width,
            h = self.height,
            t = esc(title)
        );
        for v in self.x.ticks() {
            let px = self.px(v);
            let _ = write!(
                s,
                "<path d=\"M{px:.1},{y0:.1}V{y1:.1}\" class=\"grid\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                y0 + 16.0,
                esc(&(self.x.format)(v))
            );
        }
        if y_ticks {
            for v in self.y.ticks() {
                let py = self.py(v);
                let _ = write!(
                    s,
                    "<path d=\"M{x0:.1},{py:.1}H{x1:.1}\" class=\"grid\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
                    x0 - 6.0,
                    py + 4.0,
                    esc(&(self.y.format)(v))
                );
            }
        }
        let _ = write!(
            s,
            "<path d=\"M{x0:.1},{y1:.1}V{y0:.1}H{x1:.1}\" class=\"axis\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axislbl\">{}</text>",
            (x0 + x1) / 2.0,
            self.height - 8.0,
            esc(&axis_label(&self.x))
        );
        if y_ticks {
            let _ = write!(
                s,
                "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"axislbl\">{}</text>",
                (y0 + y1) / 2.0,
                esc(&axis_label(&self.y))
            );
        }
        s.push_str(&self.body);
        s.push_str("</svg>");
        s
    }
}

fn axis_label(a: &Axis) -> String {
    if a.log {
        format!("{} (log scale)", a.label)
    } else {
        a.label.clone()
    }
}

/// Marker shapes: prompt arms are circles, fine-tunes diamonds, rings mark special points.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Circle(f64),
    Diamond(f64),
    Ring(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn linear_axes_get_round_ticks() {
        // Span 0.54 / 5 = 0.108 rounds up to a step of 0.2.
        let a = Axis::linear(0.43, 0.97, "q", plain);
        let t: Vec<String> = a.ticks().iter().map(|v| format!("{v:.1}")).collect();
        assert_eq!(t, ["0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let a = Axis::log(0.00015, 0.02, "c", plain);
        assert!((a.min - 1e-4).abs() < 1e-18 && (a.max - 0.1).abs() < 1e-15);
        assert_eq!(a.ticks().len(), 4);
        assert!((a.fraction(0.001) - 1.0 / 3.0).abs() < 1e-12);
        let narrow = Axis::log(3.0, 40.0, "ms", plain);
        assert_eq!(narrow.ticks(), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
    }

    #[test]
    fn degenerate_ranges_still_draw() {
        let a = Axis::linear(0.9, 0.9, "q", plain);
        assert!(a.max > a.min);
        assert!(a.fraction(0.9) > 0.0 && a.fraction(0.9) < 1.0);
    }

    #[test]
    fn labels_are_escaped() {
        let mut p = Plot::new(
            Axis::linear(0.0, 1.0, "x", plain),
            Axis::linear(0.0, 1.0, "y", plain),
        );
        p.label(0.5, 0.5, 4.0, 0.0, "<script>alert(1)</script>", "lbl");
        let svg = p.finish("t", true);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}
