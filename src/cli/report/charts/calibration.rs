//! Calibration against holdout (EvaluateModel): for each group of customers
//! by their repeat purchase occasions in the calibration period (0..6, then
//! "7+"), two bars: the repeat occasions per customer the group actually
//! made in the holdout, and what the calibration fit predicted. Each bar's
//! value is printed above it; the customers of the group under its label.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{footnote, footnote_lines, header, instant, label, text_style, ChartError, INK};
use crate::pb;

const FIGURE: &str = "calibration against holdout";

/// The bar of the holdout's actual repeat occasions per customer.
pub const ACTUAL: RGBColor = RGBColor(0x44, 0x44, 0x44);
/// The bar of the calibration fit's prediction.
pub const PREDICTED: RGBColor = RGBColor(0x31, 0x82, 0xBD);

/// How to read the figure.
pub const HOW_TO_READ: &str = "How to read: the model was fitted on the data up to the \
calibration end only, then asked how many repeat purchases each customer would make in the \
holdout. Customers are grouped by their repeat purchases during calibration. Where the blue \
bar (predicted) is as high as the grey one (actual), the model can be trusted for that \
group; a gap shows where it over- or under-forecasts.";

const WIDTH: u32 = 760;
const LEFT: i32 = 70;
const TOP: i32 = super::HEADER_H + 40;
const PLOT_H: i32 = 280;

/// The label of a group: `3`, or `7+` for the last.
pub fn group_label(g: &pb::HoldoutComparison) -> String {
    if g.and_more {
        format!("{}+", g.repeat_occasions)
    } else {
        g.repeat_occasions.to_string()
    }
}

/// A bar value as printed above it.
pub fn value_label(v: f64) -> String {
    format!("{v:.2}")
}

/// A round step for about `ticks` grid lines up to `max`.
fn step(max: f64, ticks: f64) -> f64 {
    let raw = max / ticks;
    let magnitude = 10_f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The chart of `evaluation` as an SVG document.
pub fn calibration_chart(evaluation: &pb::ModelEvaluation) -> Result<String, ChartError> {
    let groups = &evaluation.by_calibration_repeat_occasions;
    let max = groups
        .iter()
        .flat_map(|g| [g.actual_per_customer, g.predicted_per_customer])
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let step = if max > 0.0 { step(max, 5.0) } else { 0.2 };
    let top_value = (max / step).ceil().max(1.0) * step;
    let plot_w = WIDTH as i32 - LEFT - 20;
    let group_w = plot_w / (groups.len().max(1) as i32);
    let bar_w = (group_w * 35 / 100).max(4);
    let bottom = TOP + PLOT_H;
    let legend_y = bottom + 60;
    let note_top = legend_y + 24;
    let height = note_top + footnote_lines(HOW_TO_READ, WIDTH) * super::LINE + 12;
    let y_of = |v: f64| bottom - (v / top_value * f64::from(PLOT_H)).round() as i32;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, height as u32)).into_drawing_area();
        let err = super::draw_error(FIGURE);
        area.fill(&WHITE).map_err(&err)?;
        header(
            &area,
            FIGURE,
            "Calibration against holdout: repeat purchases per customer",
            &format!(
                "BG/NBD fitted on data up to {}, holdout to {} ({:.0} days), {} customers. Unit: repeat purchases per customer in the holdout.",
                instant(&evaluation.calibration_end),
                instant(&evaluation.holdout_end),
                evaluation.holdout_days,
                evaluation.customers
            ),
            WIDTH,
        )?;
        // The value axis: grid lines and labels.
        let axis = text_style(12, INK, HPos::Right, VPos::Center);
        let mut v = 0.0;
        while v <= top_value + step / 2.0 {
            let y = y_of(v);
            area.draw(&PathElement::new(
                vec![(LEFT, y), (LEFT + plot_w, y)],
                super::GRID.stroke_width(1),
            ))
            .map_err(&err)?;
            label(&area, FIGURE, &format!("{v:.2}"), (LEFT - 6, y), &axis)?;
            v += step;
        }
        label(
            &area,
            FIGURE,
            "per customer",
            // Left-aligned from the figure's edge: right-aligned at the
            // axis it ran past the left edge and was cut.
            (4, TOP - 18),
            &text_style(12, INK, HPos::Left, VPos::Center),
        )?;
        let centre = text_style(11, INK, HPos::Center, VPos::Bottom);
        let below = text_style(12, INK, HPos::Center, VPos::Top);
        for (i, g) in groups.iter().enumerate() {
            let x = LEFT + i as i32 * group_w + group_w / 2;
            for (value, colour, x0) in [
                (g.actual_per_customer, ACTUAL, x - bar_w - 1),
                (g.predicted_per_customer, PREDICTED, x + 1),
            ] {
                let y = y_of(value);
                if y < bottom {
                    area.draw(&Rectangle::new(
                        [(x0, y), (x0 + bar_w, bottom)],
                        colour.filled(),
                    ))
                    .map_err(&err)?;
                }
                label(
                    &area,
                    FIGURE,
                    &value_label(value),
                    (x0 + bar_w / 2, y - 2),
                    &centre,
                )?;
            }
            label(&area, FIGURE, &group_label(g), (x, bottom + 6), &below)?;
            label(
                &area,
                FIGURE,
                &format!("n={}", g.customers),
                (x, bottom + 22),
                &text_style(10, super::MUTED, HPos::Center, VPos::Top),
            )?;
        }
        area.draw(&PathElement::new(
            vec![(LEFT, bottom), (LEFT + plot_w, bottom)],
            INK.stroke_width(1),
        ))
        .map_err(&err)?;
        label(
            &area,
            FIGURE,
            "repeat purchases in the calibration period (group), customers in it",
            (LEFT + plot_w / 2, legend_y - 10),
            &text_style(12, INK, HPos::Center, VPos::Center),
        )?;
        let text = text_style(12, INK, HPos::Left, VPos::Center);
        for (j, (colour, name)) in [
            (ACTUAL, "actual in the holdout"),
            (PREDICTED, "predicted by the calibration fit"),
        ]
        .into_iter()
        .enumerate()
        {
            let x = LEFT + j as i32 * 220;
            area.draw(&Rectangle::new(
                [(x, legend_y + 4), (x + 16, legend_y + 18)],
                colour.filled(),
            ))
            .map_err(&err)?;
            label(&area, FIGURE, name, (x + 22, legend_y + 11), &text)?;
        }
        footnote(&area, FIGURE, HOW_TO_READ, note_top, WIDTH)?;
        area.present().map_err(&err)?;
    }
    Ok(svg)
}
