//! Revenue per customer, cumulative, by cohort: one line per cohort over
//! the periods k since acquisition, solid where observed and dashed where
//! forecast by the model (the continuation starts at the last observed
//! period). Older cohorts are drawn in darker blue, newer in orange; a
//! legend on the right names each line.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{footnote, footnote_lines, header, instant, label, text_style, units, ChartError, INK};
use crate::pb;

const FIGURE: &str = "cumulative revenue per customer";

/// How to read the figure.
pub const HOW_TO_READ: &str = "How to read: each line is one cohort; its height at period k is \
the net revenue its customers brought in periods 0..k, divided by the cohort's size, so it \
only rises (or dips with refunds). Steeper lines are cohorts worth more per customer; a line \
that flattens has stopped buying. Dashed parts are the model's forecast, not yet observed.";

/// One point of a line: period k, cumulative revenue per customer, and
/// whether it is a forecast.
type Point = (i32, f64, bool);

const WIDTH: u32 = 980;
const LEGEND_W: u32 = 170;

/// The colour of cohort `i` of `n`: dark blue (oldest) through teal to
/// orange (newest).
pub fn cohort_colour(i: usize, n: usize) -> RGBColor {
    let stops = [(0x08, 0x30, 0x6B), (0x1B, 0x9E, 0x77), (0xE6, 0x55, 0x0D)];
    let t = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let (a, b, f) = if t < 0.5 {
        (stops[0], stops[1], t * 2.0)
    } else {
        (stops[1], stops[2], (t - 0.5) * 2.0)
    };
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The chart of `report` as an SVG document.
pub fn cumulative_revenue(report: &pb::CohortReport) -> Result<String, ChartError> {
    let currency = report
        .cohorts
        .iter()
        .flat_map(|c| &c.periods)
        .find_map(|p| p.revenue.as_ref())
        .map(|m| m.currency_code.clone())
        .unwrap_or_default();
    let series: Vec<(&pb::Cohort, Vec<Point>)> = report
        .cohorts
        .iter()
        .map(|c| {
            let points = c
                .periods
                .iter()
                .filter_map(|p| {
                    p.cumulative_revenue_per_customer
                        .as_ref()
                        .map(|m| (p.k as i32, units(m), p.forecast))
                })
                .collect();
            (c, points)
        })
        .collect();
    let max_k = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(k, _, _)| *k))
        .max()
        .unwrap_or(0)
        .max(1);
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y, _)| *y))
        .fold(0.0_f64, f64::max);
    let max_y = if max_y > 0.0 { max_y * 1.08 } else { 1.0 };
    let rows = report.cohorts.len() as u32;
    let plot_h = (rows * 15 + 40).max(380);
    let note_h = footnote_lines(HOW_TO_READ, WIDTH) as u32 * super::LINE as u32 + 16;
    let height = super::HEADER_H as u32 + plot_h + note_h;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let err = super::draw_error(FIGURE);
        area.fill(&WHITE).map_err(&err)?;
        let model = if report.model_version > 0 {
            format!(", forecast by model version {}", report.model_version)
        } else {
            String::new()
        };
        header(
            &area,
            FIGURE,
            "Revenue per customer, cumulative, by cohort",
            &format!(
                "As of {}; periods in {}{model}. Unit: {currency} per customer of the cohort.",
                instant(&report.as_of),
                report.time_zone
            ),
            WIDTH,
        )?;
        let plot = area.margin(super::HEADER_H, note_h, 0, LEGEND_W);
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0..max_k, 0.0..max_y)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("period k after acquisition")
            .y_desc(format!("cumulative revenue per customer ({currency})"))
            .x_labels((max_k as usize + 1).min(25))
            .y_labels(8)
            .light_line_style(super::GRID.mix(0.5))
            .bold_line_style(super::GRID)
            .axis_desc_style((super::FONT, super::px(13)))
            .label_style((super::FONT, super::px(12)))
            .draw()
            .map_err(&err)?;
        let n = series.len();
        for (i, (_, points)) in series.iter().enumerate() {
            let colour = cohort_colour(i, n);
            let observed: Vec<(i32, f64)> = points
                .iter()
                .filter(|(_, _, f)| !f)
                .map(|(k, y, _)| (*k, *y))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    observed.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(&err)?;
            let forecast: Vec<(i32, f64)> = observed
                .last()
                .copied()
                .into_iter()
                .chain(
                    points
                        .iter()
                        .filter(|(_, _, f)| *f)
                        .map(|(k, y, _)| (*k, *y)),
                )
                .collect();
            if forecast.len() > 1 {
                chart
                    .draw_series(DashedLineSeries::new(
                        forecast,
                        6,
                        4,
                        colour.stroke_width(2),
                    ))
                    .map_err(&err)?;
            }
        }
        // The legend, one line per cohort, on the right.
        let x = (WIDTH - LEGEND_W + 12) as i32;
        let text = text_style(11, INK, HPos::Left, VPos::Center);
        label(&area, FIGURE, "cohort", (x, super::HEADER_H + 12), &text)?;
        for (i, (c, _)) in series.iter().enumerate() {
            let y = super::HEADER_H + 30 + i as i32 * 15;
            area.draw(&PathElement::new(
                vec![(x, y), (x + 20, y)],
                cohort_colour(i, n).stroke_width(3),
            ))
            .map_err(&err)?;
            label(&area, FIGURE, &c.period_label, (x + 26, y), &text)?;
        }
        let y = super::HEADER_H + 30 + n as i32 * 15 + 8;
        area.draw(&PathElement::new(
            vec![(x, y), (x + 8, y)],
            INK.stroke_width(2),
        ))
        .map_err(&err)?;
        area.draw(&PathElement::new(
            vec![(x + 12, y), (x + 20, y)],
            INK.stroke_width(2),
        ))
        .map_err(&err)?;
        label(&area, FIGURE, "forecast", (x + 26, y), &text)?;
        footnote(
            &area,
            FIGURE,
            HOW_TO_READ,
            super::HEADER_H + plot_h as i32 + 8,
            WIDTH,
        )?;
        area.present().map_err(&err)?;
    }
    Ok(svg)
}
