//! The recall–throughput chart, written by hand as SVG: x is recall@k, y is queries per second
//! on a log scale, one polyline with labelled markers per engine, the exact scan as one marker.

use std::fmt::Write as _;

pub struct ChartPoint {
    pub recall: f64,
    pub qps: f64,
    pub label: String,
}

pub struct Series {
    pub name: String,
    pub points: Vec<ChartPoint>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Recall from a round number of hundredths below the lowest point, up to 1.
fn recall_range(lowest: f64) -> (f64, f64) {
    let low = ((lowest - 0.02) * 20.0).floor() / 20.0;
    let low = low.clamp(0.0, 0.9);
    (low, 1.0)
}

/// Whole decades around every value.
fn qps_range(lowest: f64, highest: f64) -> (f64, f64) {
    let low = 10f64.powf(lowest.log10().floor());
    let mut high = 10f64.powf(highest.log10().ceil());
    if high <= low {
        high = low * 10.0;
    }
    (low, high)
}

pub fn recall_qps_chart(
    title: &str,
    k: usize,
    series: &[Series],
    exact: Option<&ChartPoint>,
) -> String {
    let plotted =
        |point: &&ChartPoint| point.qps > 0.0 && point.qps.is_finite() && point.recall.is_finite();
    let all: Vec<&ChartPoint> = series
        .iter()
        .flat_map(|series| series.points.iter())
        .chain(exact)
        .filter(plotted)
        .collect();
    let lowest_recall = all.iter().map(|p| p.recall).fold(1.0, f64::min);
    let (qps_low, qps_high) = if all.is_empty() {
        (1.0, 10.0)
    } else {
        qps_range(
            all.iter().map(|p| p.qps).fold(f64::INFINITY, f64::min),
            all.iter().map(|p| p.qps).fold(0.0, f64::max),
        )
    };
    let (recall_low, recall_high) = recall_range(lowest_recall);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x_of = |recall: f64| LEFT + (recall - recall_low) / (recall_high - recall_low) * plot_width;
    let y_of = |qps: f64| {
        TOP + plot_height
            - (qps.log10() - qps_low.log10()) / (qps_high.log10() - qps_low.log10()) * plot_height
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );

    // Vertical grid and x ticks: every 0.05 on a narrow range, every 0.1 on a wide one.
    let step = if recall_high - recall_low > 0.31 {
        0.1
    } else {
        0.05
    };
    let ticks = ((recall_high - recall_low) / step).round() as usize;
    for tick in 0..=ticks {
        let recall = recall_low + tick as f64 * step;
        let x = x_of(recall);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{recall:.2}</text>"##,
            TOP + plot_height,
            TOP + plot_height + 18.0
        );
    }
    // Horizontal grid and y ticks at 1, 2 and 5 of each decade.
    let mut decade = qps_low;
    while decade < qps_high * 1.0001 {
        for multiple in [1.0, 2.0, 5.0] {
            let qps = decade * multiple;
            if qps > qps_high * 1.0001 {
                break;
            }
            let y = y_of(qps);
            let stroke = if multiple == 1.0 {
                "#c8c8c8"
            } else {
                "#ececec"
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT + plot_width,
                LEFT - 6.0,
                y + 4.0,
                qps_label(qps)
            );
        }
        decade *= 10.0;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">recall@{k}</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">queries per second, one connection (log scale)</text>"#,
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0
    );

    for (index, series) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<&ChartPoint> = series.points.iter().filter(plotted).collect();
        let coordinates: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p.recall), y_of(p.qps)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            coordinates.join(" ")
        );
        for point in points {
            let (x, y) = (x_of(point.recall), y_of(point.qps));
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{colour}">{}</text>"#,
                x + 6.0,
                y - 6.0,
                escape(&point.label)
            );
        }
    }
    let mut legend: Vec<(String, &str, bool)> = series
        .iter()
        .enumerate()
        .map(|(index, series)| (series.name.clone(), COLOURS[index % COLOURS.len()], true))
        .collect();
    if let Some(point) = exact.filter(|p| plotted(p)) {
        let (x, y) = (x_of(point.recall), y_of(point.qps));
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="black"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
            x - 4.0,
            y - 4.0,
            x - 8.0,
            y - 6.0,
            escape(&point.label)
        );
        legend.push(("exact scan".to_string(), "black", false));
    }
    // Bottom left: the corner the curves (fast at low recall, slow at high) leave empty.
    let legend_top = TOP + plot_height - 12.0 - 18.0 * legend.len() as f64;
    for (row, (name, colour, line)) in legend.iter().enumerate() {
        let y = legend_top + 18.0 * row as f64 + 9.0;
        let x = LEFT + 14.0;
        if *line {
            let _ = writeln!(
                svg,
                r#"<line x1="{x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{:.1}" cy="{y:.1}" r="4" fill="{colour}"/>"#,
                x + 24.0,
                x + 12.0
            );
        } else {
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{colour}"/>"#,
                x + 8.0,
                y - 4.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 32.0,
            y + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn qps_label(qps: f64) -> String {
    if qps >= 1000.0 && (qps / 1000.0).fract() == 0.0 {
        format!("{}k", qps / 1000.0)
    } else if qps >= 1.0 {
        format!("{qps:.0}")
    } else {
        format!("{qps}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64, u32)]) -> Series {
        Series {
            name: name.to_string(),
            points: points
                .iter()
                .map(|&(recall, qps, ef)| ChartPoint {
                    recall,
                    qps,
                    label: format!("ef {ef}"),
                })
                .collect(),
        }
    }

    #[test]
    fn one_polyline_per_engine_with_labels_and_legend() {
        let engines = [
            series(
                "hannoy",
                &[(0.88, 1400.0, 20), (0.96, 1600.0, 40), (0.99, 600.0, 160)],
            ),
            series("pgvector", &[(0.85, 1500.0, 20), (0.91, 1000.0, 40)]),
        ];
        let exact = ChartPoint {
            recall: 1.0,
            qps: 12.0,
            label: "exact".to_string(),
        };
        let svg = recall_qps_chart("a <test> & chart", 10, &engines, Some(&exact));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5 + 2, "markers and legend");
        assert!(svg.contains("ef 160") && svg.contains("pgvector") && svg.contains("exact scan"));
        assert!(svg.contains("a &lt;test&gt; &amp; chart"));
        assert!(svg.contains("recall@10"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn ranges() {
        assert_eq!(qps_range(12.0, 1600.0), (10.0, 10000.0));
        assert_eq!(qps_range(100.0, 100.0), (100.0, 1000.0));
        assert_eq!(recall_range(0.88).0, 0.85);
        assert_eq!(recall_range(0.1).0, 0.05);
        assert_eq!(recall_range(1.0).0, 0.9);
        assert_eq!(qps_label(2000.0), "2k");
    }

    #[test]
    fn no_points_is_still_a_chart() {
        let svg = recall_qps_chart("empty", 10, &[series("hannoy", &[])], None);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(!svg.contains("NaN"));
    }
}
