//! Server-side SVG charts: pure functions from plain series to markup. No IO, no clock; every
//! label goes through maud, so a campaign or provider name is escaped like any other text.
//!
//! - [`line_chart`]: one polyline per series over consecutive days (the ramp: planned vs sent).
//! - [`share_chart`]: one 100 % stacked bar per day, a segment per series (placement shares).
//!
//! Both draw every day from the first to the last one any series has, so a day without data is
//! a visible gap, not a missing column.

use chrono::NaiveDate;
use maud::{Markup, html};

/// One named line or stack layer: a value per day.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// CSS colour of the line or segment.
    pub color: &'static str,
    pub points: Vec<(NaiveDate, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, color: &'static str) -> Self {
        Series {
            label: label.into(),
            color,
            points: Vec::new(),
        }
    }

    fn value_on(&self, day: NaiveDate) -> Option<f64> {
        self.points.iter().find(|(d, _)| *d == day).map(|(_, v)| *v)
    }
}

/// The drawing area of a chart, in SVG units (the page scales the whole picture to its box,
/// so a chart shown half as wide gets a frame half as wide to keep its labels legible).
#[derive(Debug, Clone, Copy)]
struct Frame {
    width: f64,
    height: f64,
}

/// The ramp: full page width.
const WIDE: Frame = Frame {
    width: 760.0,
    height: 260.0,
};
/// A provider's placement: two side by side.
const HALF: Frame = Frame {
    width: 440.0,
    height: 240.0,
};
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 56.0;
/// At most this many day labels under the x axis; the rest are skipped evenly.
const MAX_X_LABELS: usize = 10;
/// A chart never spans more days than this (a year and a day), whatever the series hold.
const MAX_DAYS: i64 = 366;

impl Frame {
    fn plot_w(self) -> f64 {
        self.width - LEFT - RIGHT
    }

    fn plot_h(self) -> f64 {
        self.height - TOP - BOTTOM
    }

    fn view_box(self) -> String {
        format!("0 0 {} {}", self.width, self.height)
    }
}

/// Every day from the first to the last point of any series (the last [`MAX_DAYS`] of them).
pub fn days_of(series: &[Series]) -> Vec<NaiveDate> {
    let all = series.iter().flat_map(|s| s.points.iter().map(|(d, _)| *d));
    let (Some(first), Some(last)) = (all.clone().min(), all.max()) else {
        return Vec::new();
    };
    let first = first.max(last - chrono::Duration::days(MAX_DAYS - 1));
    first.iter_days().take_while(|d| *d <= last).collect()
}

/// A round step for about five ticks up to `max` (1, 2 or 5 times a power of ten).
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    step.max(1.0)
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Which day indexes get a label: about [`MAX_X_LABELS`], always the last one.
fn labelled(n: usize) -> impl Fn(usize) -> bool {
    let every = n.div_ceil(MAX_X_LABELS).max(1);
    move |i| i % every == 0 || i + 1 == n
}

fn empty(title: &str) -> Markup {
    html! {
        figure.chart {
            figcaption { (title) }
            p.empty { "No data yet for this period." }
        }
    }
}

fn legend(series: &[Series]) -> Markup {
    html! {
        ul.legend {
            @for s in series {
                li { span.swatch style={ "background:" (s.color) } {} (s.label) }
            }
        }
    }
}

fn x_axis(f: Frame, days: &[NaiveDate], band: f64) -> Markup {
    let show = labelled(days.len());
    html! {
        line x1=(LEFT) y1=(TOP + f.plot_h()) x2=(LEFT + f.plot_w()) y2=(TOP + f.plot_h()) stroke="#555" {}
        @for (i, d) in days.iter().enumerate() {
            @if show(i) {
                @let x = LEFT + band * (i as f64 + 0.5);
                @let y = TOP + f.plot_h() + 14.0;
                text.xlabel x=(format!("{x:.1}")) y=(y) text-anchor="end"
                    transform=(format!("rotate(-35 {x:.1} {y})")) { (d.format("%m-%d")) }
            }
        }
    }
}

/// Horizontal grid lines and labels for `ticks` (value, label), scaled to `max`.
fn y_axis(f: Frame, ticks: &[(f64, String)], max: f64) -> Markup {
    html! {
        @for (v, label) in ticks {
            @let y = TOP + f.plot_h() * (1.0 - v / max);
            line x1=(LEFT) y1=(format!("{y:.1}")) x2=(LEFT + f.plot_w()) y2=(format!("{y:.1}")) stroke="#ddd" {}
            text.ylabel x=(LEFT - 6.0) y=(format!("{:.1}", y + 4.0)) text-anchor="end" { (label) }
        }
    }
}

/// Lines over days: the ramp (planned vs sent). Each point carries a `<title>` tooltip.
pub fn line_chart(title: &str, y_label: &str, series: &[Series]) -> Markup {
    let days = days_of(series);
    if days.is_empty() {
        return empty(title);
    }
    let top_value = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let step = nice_step(top_value);
    let max = (top_value / step).ceil().max(1.0) * step;
    let ticks: Vec<(f64, String)> = (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|v| *v <= max + 1e-9)
        .map(|v| (v, fmt_num(v)))
        .collect();
    let f = WIDE;
    let band = f.plot_w() / days.len() as f64;
    let x = |i: usize| LEFT + band * (i as f64 + 0.5);
    let y = |v: f64| TOP + f.plot_h() * (1.0 - v / max);
    html! {
        figure.chart {
            figcaption { (title) }
            svg.linechart xmlns="http://www.w3.org/2000/svg" viewBox=(f.view_box())
                role="img" aria-label=(title) {
                title { (title) }
                (y_axis(f, &ticks, max))
                text.ylabel x="12" y=(TOP + f.plot_h() / 2.0) text-anchor="middle"
                    transform=(format!("rotate(-90 12 {})", TOP + f.plot_h() / 2.0)) { (y_label) }
                (x_axis(f, &days, band))
                @for s in series {
                    @let pts: Vec<(usize, f64)> = days.iter().enumerate()
                        .filter_map(|(i, d)| s.value_on(*d).map(|v| (i, v))).collect();
                    @let path = pts.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v)))
                        .collect::<Vec<_>>().join(" ");
                    g.series data-series=(s.label) {
                        polyline points=(path) fill="none" stroke=(s.color) stroke-width="2" {}
                        @for (i, v) in &pts {
                            circle cx=(format!("{:.1}", x(*i))) cy=(format!("{:.1}", y(*v))) r="3" fill=(s.color) {
                                title { (s.label) " " (days[*i]) ": " (fmt_num(*v)) }
                            }
                        }
                    }
                }
            }
            (legend(series))
        }
    }
}

/// One 100 % stacked bar per day with a segment per series (counts turned into shares of the
/// day's total): where the day's messages landed. A day with no messages has no bar.
pub fn share_chart(title: &str, series: &[Series]) -> Markup {
    let days = days_of(series);
    if days.is_empty() {
        return empty(title);
    }
    let ticks: Vec<(f64, String)> = [0.0, 25.0, 50.0, 75.0, 100.0]
        .into_iter()
        .map(|v| (v, format!("{v:.0} %")))
        .collect();
    let f = HALF;
    let band = f.plot_w() / days.len() as f64;
    let bar = (band * 0.8).max(1.0);
    html! {
        figure.chart {
            figcaption { (title) }
            svg.sharechart xmlns="http://www.w3.org/2000/svg" viewBox=(f.view_box())
                role="img" aria-label=(title) {
                title { (title) }
                (y_axis(f, &ticks, 100.0))
                (x_axis(f, &days, band))
                @for (i, day) in days.iter().enumerate() {
                    @let counts: Vec<f64> = series.iter().map(|s| s.value_on(*day).unwrap_or(0.0)).collect();
                    @let total: f64 = counts.iter().sum();
                    @if total > 0.0 {
                        g.day data-day=(day) {
                            @let x = LEFT + band * i as f64 + (band - bar) / 2.0;
                            @for (k, segment) in stack(&counts, total).into_iter().enumerate() {
                                @if let Some((from, share)) = segment {
                                    rect x=(format!("{x:.1}")) width=(format!("{bar:.1}"))
                                        y=(format!("{:.1}", TOP + f.plot_h() * (1.0 - from - share)))
                                        height=(format!("{:.1}", f.plot_h() * share))
                                        fill=(series[k].color) {
                                        title {
                                            (day) " " (series[k].label) ": " (fmt_num(counts[k]))
                                            " of " (fmt_num(total)) " (" (format!("{:.0}", share * 100.0)) " %)"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (legend(series))
        }
    }
}

/// Each count's segment as (start, share) of the total, bottom up; `None` for a zero count.
fn stack(counts: &[f64], total: f64) -> Vec<Option<(f64, f64)>> {
    let mut from = 0.0;
    counts
        .iter()
        .map(|c| {
            if *c <= 0.0 {
                return None;
            }
            let share = c / total;
            let seg = (from, share);
            from += share;
            Some(seg)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn series(label: &str, points: &[(u32, f64)]) -> Series {
        Series {
            label: label.into(),
            color: "#123456",
            points: points.iter().map(|(day, v)| (d(*day), *v)).collect(),
        }
    }

    #[test]
    fn days_span_every_series_without_gaps() {
        let a = series("a", &[(3, 1.0), (5, 2.0)]);
        let b = series("b", &[(1, 1.0)]);
        assert_eq!(days_of(&[a, b]), (1..=5).map(d).collect::<Vec<_>>());
        assert!(days_of(&[series("none", &[])]).is_empty());
    }

    #[test]
    fn long_periods_are_capped_and_sparsely_labelled() {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let long = Series {
            label: "sent".into(),
            color: "#000",
            points: (0..800)
                .map(|i| (start + chrono::Duration::days(i), 1.0))
                .collect(),
        };
        let days = days_of(std::slice::from_ref(&long));
        assert_eq!(days.len(), MAX_DAYS as usize);
        assert_eq!(*days.last().unwrap(), start + chrono::Duration::days(799));
        let show = labelled(days.len());
        let shown = (0..days.len()).filter(|i| show(*i)).count();
        assert!(
            (MAX_X_LABELS..=MAX_X_LABELS + 1).contains(&shown),
            "{shown}"
        );
        assert!(show(days.len() - 1), "the last day is always labelled");
        let s = line_chart("year", "messages", &[long]).into_string();
        assert_eq!(s.matches("class=\"xlabel\"").count(), shown);
    }

    #[test]
    fn nice_steps() {
        for (max, step) in [
            (0.0, 1.0),
            (3.0, 1.0),
            (10.0, 2.0),
            (37.0, 10.0),
            (240.0, 50.0),
        ] {
            assert_eq!(nice_step(max), step, "max {max}");
        }
    }

    #[test]
    fn stacks_add_up_to_the_whole() {
        let s = stack(&[3.0, 0.0, 1.0], 4.0);
        assert_eq!(s, vec![Some((0.0, 0.75)), None, Some((0.75, 0.25))]);
    }

    #[test]
    fn labels_are_escaped() {
        let evil = series("<script>alert(1)</script>", &[(1, 2.0), (2, 3.0)]);
        for svg in [
            line_chart("<b>ramp</b>", "sends", std::slice::from_ref(&evil)),
            share_chart("\"quoted\" & <title>", std::slice::from_ref(&evil)),
        ] {
            let s = svg.into_string();
            assert!(!s.contains("<script>"), "{s}");
            assert!(!s.contains("<b>"), "{s}");
            assert!(s.contains("&lt;script&gt;"), "{s}");
        }
    }

    #[test]
    fn line_chart_draws_a_point_per_value() {
        let planned = series("planned", &[(1, 10.0), (2, 12.0), (3, 14.0)]);
        let sent = series("sent", &[(1, 9.0), (3, 14.0)]);
        let s = line_chart("ramp", "sends", &[planned, sent]).into_string();
        assert_eq!(s.matches("<circle").count(), 5, "{s}");
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("sent 2026-11-03: 14"), "{s}");
    }

    #[test]
    fn share_chart_draws_a_segment_per_nonzero_count() {
        let inbox = series("inbox", &[(1, 3.0), (2, 4.0)]);
        let spam = series("spam", &[(1, 1.0)]);
        let s = share_chart("gmail", &[inbox, spam]).into_string();
        assert_eq!(s.matches("<rect").count(), 3, "{s}");
        assert!(s.contains("2026-11-01 inbox: 3 of 4 (75 %)"), "{s}");
        assert!(s.contains("2026-11-02 inbox: 4 of 4 (100 %)"), "{s}");
    }

    #[test]
    fn no_data_says_so() {
        let s = share_chart("gmail", &[]).into_string();
        assert!(s.contains("No data yet"));
        assert!(!s.contains("<svg"));
    }
}
