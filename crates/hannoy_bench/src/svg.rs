//! The recall–throughput chart as SVG, drawn with plotters: x is recall@k, y is queries per
//! second on a log scale, one line with labelled markers per engine, the exact scan as one
//! marker.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::BenchError;

pub struct ChartPoint {
    pub recall: f64,
    pub qps: f64,
    pub label: String,
}

pub struct Series {
    pub name: String,
    pub points: Vec<ChartPoint>,
}

const SIZE: (u32, u32) = (760, 480);
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

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

/// The most recall labels plotters may place: held to one per 0.05 on a narrow range and one
/// per 0.1 on a wide one, it picks that step.
fn recall_tick_count(low: f64, high: f64) -> usize {
    let step = if high - low > 0.31 { 0.1 } else { 0.05 };
    ((high - low) / step).round() as usize + 1
}

/// 1, 2 and 5 of each decade: plotters' own log ticks label every integer multiple.
fn qps_ticks(low: f64, high: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = low;
    while decade < high * 1.0001 {
        for multiple in [1.0, 2.0, 5.0] {
            let qps = decade * multiple;
            if qps <= high * 1.0001 {
                ticks.push(qps);
            }
        }
        decade *= 10.0;
    }
    ticks
}

pub fn recall_qps_chart(
    title: &str,
    k: usize,
    series: &[Series],
    exact: Option<&ChartPoint>,
) -> Result<String, BenchError> {
    let mut svg = String::new();
    draw(&mut svg, title, k, series, exact)
        .map_err(|error| BenchError::Data(format!("drawing recall_qps.svg: {error}")))?;
    Ok(svg)
}

fn plotted(point: &&ChartPoint) -> bool {
    point.qps > 0.0 && point.qps.is_finite() && point.recall.is_finite()
}

fn draw(
    svg: &mut String,
    title: &str,
    k: usize,
    series: &[Series],
    exact: Option<&ChartPoint>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
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

    // Font sizes are plotters' own: its SVG backend writes each divided by 1.24.
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        // Room for the labels of the points at recall 1.
        .margin_right(60)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            recall_low..recall_high,
            (qps_low..qps_high)
                .log_scale()
                .with_key_points(qps_ticks(qps_low, qps_high)),
        )?;
    chart
        .configure_mesh()
        .x_labels(recall_tick_count(recall_low, recall_high))
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xe0, 0xe0, 0xe0))
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|recall| format!("{recall:.2}"))
        .y_label_formatter(&|qps| qps_label(*qps))
        .x_desc(format!("recall@{k}"))
        .y_desc("queries per second, one connection (log scale)")
        .draw()?;

    let marker_label = |colour: RGBColor| {
        ("sans-serif", 12)
            .into_font()
            .color(&colour)
            .pos(Pos::new(HPos::Left, VPos::Bottom))
    };
    for (index, series) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<&ChartPoint> = series.points.iter().filter(plotted).collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.recall, p.qps)),
                colour.stroke_width(2),
            ))?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new([(0, 0), (24, 0)], colour.stroke_width(2))
                    + Circle::new((12, 0), 4, colour.filled())
            });
        chart.draw_series(points.iter().map(|p| {
            EmptyElement::at((p.recall, p.qps))
                + Circle::new((0, 0), 4, colour.filled())
                + Text::new(p.label.clone(), (6, -4), marker_label(colour))
        }))?;
    }
    if let Some(point) = exact.filter(plotted) {
        let label_style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Bottom));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((point.recall, point.qps))
                    + Rectangle::new([(-4, -4), (4, 4)], BLACK.filled())
                    + Text::new(point.label.clone(), (-8, -4), label_style),
            ))?
            .label("exact scan")
            .legend(|(x, y)| Rectangle::new([(x + 8, y - 4), (x + 16, y + 4)], BLACK.filled()));
    }
    // Lower left: the corner the curves (fast at low recall, slow at high) leave empty.
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.8))
        .border_style(RGBColor(0xc8, 0xc8, 0xc8))
        .draw()?;
    root.present()
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

    /// Engine lines and their legend samples are the chart's only 2-pixel strokes.
    fn engine_lines(svg: &str, colour: &str) -> usize {
        svg.matches(&format!(r#"stroke="{colour}" stroke-width="2""#))
            .count()
    }

    #[test]
    fn one_line_per_engine_with_labels_and_legend() {
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
        let svg =
            recall_qps_chart("a <test> & chart", 10, &engines, Some(&exact)).expect("a chart");
        assert_eq!(engine_lines(&svg, "#1F77B4"), 2, "hannoy's line and legend");
        assert_eq!(
            engine_lines(&svg, "#D62728"),
            2,
            "pgvector's line and legend"
        );
        assert_eq!(svg.matches("<circle").count(), 5 + 2, "markers and legend");
        assert!(svg.contains("ef 160") && svg.contains("pgvector") && svg.contains("exact scan"));
        assert!(svg.contains("a &lt;test&gt; &amp; chart"));
        assert!(svg.contains("recall@10"));
        assert!(svg.contains("queries per second"));
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
        assert_eq!(recall_tick_count(0.85, 1.0), 4);
        assert_eq!(recall_tick_count(0.05, 1.0), 10);
        assert_eq!(
            qps_ticks(10.0, 1000.0),
            [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(qps_label(2000.0), "2k");
    }

    #[test]
    fn no_points_is_still_a_chart() {
        let svg = recall_qps_chart("empty", 10, &[series("hannoy", &[])], None).expect("a chart");
        assert!(
            svg.contains("hannoy"),
            "the engine still has its legend entry"
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN"));
    }
}
