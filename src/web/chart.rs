//! Small line charts of one metric as SVG, drawn on the server.
//!
//! In: the readings of one metric over a period, the limits that apply and
//! the patient's own baseline band. Out: SVG markup. Pure: no IO, no clock.
//!
//! # Choices
//!
//! - Server-rendered SVG with presentation attributes only (no `style`), so
//!   the pages keep a Content-Security-Policy without inline styles and need
//!   no charting script.
//! - Every chart has a `<title>` and a `<desc>` that say in words what it
//!   shows (number of readings, the last value, the limits), so a screen
//!   reader user gets the same facts; the pages add a table as well.
//! - The y range covers the readings, the limits and the band, padded a
//!   little, so a limit is always visible next to the values it judges.

use maud::{html, Markup};

/// What to draw.
pub struct ChartSpec<'a> {
    /// Short accessible name, e.g. "Temperatuur, 14 dagen".
    pub title: &'a str,
    /// The chart in words.
    pub description: &'a str,
    /// `(event time in µs, value)`, oldest first.
    pub points: &'a [(i64, f64)],
    /// The period shown, in µs.
    pub from_micros: i64,
    pub to_micros: i64,
    /// Limits drawn as dashed lines, with a short label each.
    pub limits: &'a [(f64, String)],
    /// The patient's own baseline band (low, high), if known.
    pub band: Option<(f64, f64)>,
    /// Axis labels of the start and end of the period.
    pub from_label: &'a str,
    pub to_label: &'a str,
    /// Decimals of the y-axis labels.
    pub decimals: usize,
    pub width: u32,
    pub height: u32,
}

const MARGIN_LEFT: f64 = 48.0;
const MARGIN_RIGHT: f64 = 12.0;
const MARGIN_TOP: f64 = 10.0;
const MARGIN_BOTTOM: f64 = 22.0;
/// Above this many points only the line is drawn, without a dot per reading.
const MAX_DOTS: usize = 150;

/// The colours, chosen for contrast on white (WCAG AA for the text).
const LINE: &str = "#1d4f91";
const LIMIT: &str = "#b3261e";
const BAND: &str = "#2e7d32";
const AXIS: &str = "#4a4a4a";

/// Returns the y range to draw: the readings, the limits and the band, padded.
fn y_range(spec: &ChartSpec<'_>) -> (f64, f64) {
    let mut low = f64::INFINITY;
    let mut high = f64::NEG_INFINITY;
    let values = spec
        .points
        .iter()
        .map(|(_, value)| *value)
        .chain(spec.limits.iter().map(|(value, _)| *value))
        .chain(spec.band.into_iter().flat_map(|(a, b)| [a, b]));
    for value in values.filter(|value| value.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if (high - low).abs() < f64::EPSILON {
        return (low - 1.0, high + 1.0);
    }
    let pad = (high - low) * 0.08;
    (low - pad, high + pad)
}

/// Formats an axis number without trailing zeros.
fn axis_number(value: f64, decimals: usize) -> String {
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    text
}

/// Renders the chart; see the module docs.
pub fn render(spec: &ChartSpec<'_>) -> Markup {
    let width = f64::from(spec.width);
    let height = f64::from(spec.height);
    let plot_width = (width - MARGIN_LEFT - MARGIN_RIGHT).max(1.0);
    let plot_height = (height - MARGIN_TOP - MARGIN_BOTTOM).max(1.0);
    let (y_low, y_high) = y_range(spec);
    let span = (spec.to_micros - spec.from_micros).max(1) as f64;
    let x = |micros: i64| MARGIN_LEFT + (micros - spec.from_micros) as f64 / span * plot_width;
    let y = |value: f64| MARGIN_TOP + (y_high - value) / (y_high - y_low) * plot_height;
    let mut line = String::with_capacity(spec.points.len() * 16);
    for (at, value) in spec.points {
        if !value.is_finite() {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!("{:.1},{:.1}", x(*at), y(*value)));
    }
    let ticks = [y_low, (y_low + y_high) / 2.0, y_high];
    let title_id = format!("chart-title-{}", spec.title.len() ^ spec.points.len());
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"
            viewBox=(format!("0 0 {} {}", spec.width, spec.height))
            width=(spec.width) height=(spec.height)
            aria-labelledby=(title_id) font-family="system-ui, sans-serif" font-size="11" {
            title id=(title_id) { (spec.title) }
            desc { (spec.description) }
            rect x=(MARGIN_LEFT) y=(MARGIN_TOP) width=(format!("{plot_width:.1}"))
                height=(format!("{plot_height:.1}")) fill="#ffffff" stroke="#d0d0d0" {}
            @if let Some((band_low, band_high)) = spec.band {
                rect class="band" x=(MARGIN_LEFT) y=(format!("{:.1}", y(band_high)))
                    width=(format!("{plot_width:.1}"))
                    height=(format!("{:.1}", (y(band_low) - y(band_high)).max(1.0)))
                    fill=(BAND) fill-opacity="0.15" {}
            }
            @for tick in ticks {
                text x=(MARGIN_LEFT - 4.0) y=(format!("{:.1}", y(tick) + 4.0)) text-anchor="end" fill=(AXIS) {
                    (axis_number(tick, spec.decimals))
                }
            }
            @for (limit, label) in spec.limits {
                line class="limit" x1=(MARGIN_LEFT) x2=(format!("{:.1}", MARGIN_LEFT + plot_width))
                    y1=(format!("{:.1}", y(*limit))) y2=(format!("{:.1}", y(*limit)))
                    stroke=(LIMIT) stroke-width="1.5" stroke-dasharray="5 4" {}
                text x=(format!("{:.1}", MARGIN_LEFT + plot_width - 2.0)) y=(format!("{:.1}", y(*limit) - 3.0))
                    text-anchor="end" fill=(LIMIT) { (label) }
            }
            @if !line.is_empty() {
                polyline class="series" points=(line) fill="none" stroke=(LINE) stroke-width="2"
                    stroke-linejoin="round" {}
            }
            @if spec.points.len() <= MAX_DOTS {
                @for (at, value) in spec.points.iter().filter(|(_, value)| value.is_finite()) {
                    circle class="reading" cx=(format!("{:.1}", x(*at))) cy=(format!("{:.1}", y(*value))) r="2.5" fill=(LINE) {}
                }
            }
            text x=(MARGIN_LEFT) y=(format!("{:.1}", height - 6.0)) fill=(AXIS) { (spec.from_label) }
            text x=(format!("{:.1}", MARGIN_LEFT + plot_width)) y=(format!("{:.1}", height - 6.0))
                text-anchor="end" fill=(AXIS) { (spec.to_label) }
        }
    }
}

/// Thins a long series to about `max` points by averaging equal slices of
/// time, so a wearable's minute readings draw as a readable line and the
/// page stays light. A short series comes back as it is.
pub fn thin(points: &[(i64, f64)], max: usize) -> Vec<(i64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let first = points[0].0;
    let last = points[points.len() - 1].0;
    let width = ((last - first) / max as i64).max(1);
    let mut thinned = Vec::with_capacity(max + 1);
    let (mut bucket, mut sum_at, mut sum, mut count) = (0_i64, 0_i128, 0.0, 0_u32);
    for (at, value) in points {
        let this = (at - first) / width;
        if count > 0 && this != bucket {
            thinned.push(((sum_at / i128::from(count)) as i64, sum / f64::from(count)));
            (sum_at, sum, count) = (0, 0.0, 0);
        }
        bucket = this;
        sum_at += i128::from(*at);
        sum += value;
        count += 1;
    }
    if count > 0 {
        thinned.push(((sum_at / i128::from(count)) as i64, sum / f64::from(count)));
    }
    thinned
}

/// Returns the chart as a standalone SVG document (for `<img src>`).
pub fn document(spec: &ChartSpec<'_>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&render(spec).into_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn spec<'a>(points: &'a [(i64, f64)], limits: &'a [(f64, String)]) -> ChartSpec<'a> {
        ChartSpec {
            title: "Temperatuur <72 uur>",
            description: "3 metingen",
            points,
            from_micros: 0,
            to_micros: 10 * HOUR,
            limits,
            band: Some((36.4, 37.2)),
            from_label: "1 dec",
            to_label: "2 dec",
            decimals: 1,
            width: 400,
            height: 160,
        }
    }

    #[test]
    fn chart_draws_every_reading_the_limits_and_the_band() {
        // Arrange
        let points = [(HOUR, 36.8), (5 * HOUR, 37.9), (9 * HOUR, 38.9)];
        let limits = [(38.0, "boven 38".to_owned())];

        // Act
        let svg = render(&spec(&points, &limits)).into_string();

        // Assert
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("class=\"limit\"").count(), 1);
        assert!(svg.contains("class=\"band\""));
        assert!(svg.contains("boven 38"));
        // Titles are escaped, not injected.
        assert!(svg.contains("Temperatuur &lt;72 uur&gt;"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn higher_values_are_drawn_higher_and_later_ones_further_right() {
        let points = [(HOUR, 36.0), (9 * HOUR, 39.0)];
        let svg = render(&spec(&points, &[])).into_string();
        let coordinates: Vec<(f64, f64)> = svg
            .split("<circle")
            .skip(1)
            .map(|circle| {
                let number = |name: &str| -> f64 {
                    let start = circle.find(name).unwrap() + name.len();
                    circle[start..].split('"').next().unwrap().parse().unwrap()
                };
                (number("cx=\""), number("cy=\""))
            })
            .collect();
        assert_eq!(coordinates.len(), 2);
        assert!(coordinates[1].0 > coordinates[0].0, "{coordinates:?}");
        // SVG y grows downwards: the higher value has the smaller y.
        assert!(coordinates[1].1 < coordinates[0].1, "{coordinates:?}");
    }

    #[test]
    fn the_y_range_always_shows_the_limit() {
        let points = [(HOUR, 36.5), (2 * HOUR, 36.6)];
        let limits = [(39.0, "boven 39".to_owned())];
        let chart = spec(&points, &limits);
        let (low, high) = y_range(&chart);
        assert!(low < 36.4 && high > 39.0, "{low} {high}");
    }

    #[test]
    fn a_long_series_is_thinned_by_averaging_slices_of_time() {
        let minutes: Vec<(i64, f64)> = (0..10_000)
            .map(|minute| {
                (
                    minute * 60_000_000,
                    if minute < 5_000 { 60.0 } else { 80.0 },
                )
            })
            .collect();
        let thinned = thin(&minutes, 500);
        assert!(
            thinned.len() <= 501 && thinned.len() >= 490,
            "{}",
            thinned.len()
        );
        assert!(thinned.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(thinned[0].1, 60.0);
        assert_eq!(thinned[thinned.len() - 1].1, 80.0);
        let short = [(1, 1.0), (2, 2.0)];
        assert_eq!(thin(&short, 500), short.to_vec());
    }

    #[test]
    fn a_flat_or_empty_series_still_has_a_range() {
        let flat = [(HOUR, 80.0), (2 * HOUR, 80.0)];
        let mut chart = spec(&flat, &[]);
        chart.band = None;
        assert_eq!(y_range(&chart), (79.0, 81.0));
        chart.points = &[];
        assert_eq!(y_range(&chart), (0.0, 1.0));
        assert!(!render(&chart).into_string().contains("<polyline"));
    }
}
