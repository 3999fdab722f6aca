//! The frequency/recency matrices of the active model: for a customer first
//! seen T days before the model's as-of time, with x repeat purchases (rows,
//! most at the top) the last of them t_x days after the first (columns),
//! P(alive) and the purchases expected over a horizon. Computed in the
//! client with the `clv_model` crate (the service's own formulas) from the
//! model's BG/NBD parameters.

use clv_model::{CustomerSummary, PurchaseParams};
use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{footnote, footnote_lines, header, instant, label, text_style, ChartError, Grid, INK};
use crate::{cli::family_values::FamilyValues, pb};

const FIGURE: &str = "frequency/recency matrix";

/// Rows: x = 1 ..= MAX_X repeat purchases (x = 0 has P(alive) = 1 under
/// BG/NBD whatever the recency, and recency 0).
pub const MAX_X: u32 = 12;
/// Columns: recency at the middle of each of this many equal slices of T.
pub const COLUMNS: u32 = 12;

/// Colours of a value's fifth of the scale (0–0.2 ... 0.8–1 of the top of
/// the scale), light to dark green (ColorBrewer "Greens").
pub const BANDS: [RGBColor; 5] = [
    RGBColor(0xED, 0xF8, 0xE9),
    RGBColor(0xBA, 0xE4, 0xB3),
    RGBColor(0x74, 0xC4, 0x76),
    RGBColor(0x31, 0xA3, 0x54),
    RGBColor(0x00, 0x6D, 0x2C),
];

/// The band of `value` on a scale from 0 to `top`.
pub fn band(value: f64, top: f64) -> RGBColor {
    let i = if top > 0.0 {
        ((value / top * 5.0).floor() as usize).min(4)
    } else {
        0
    };
    BANDS[i]
}

/// The recency of column `j` for a customer first seen `t_days` ago.
pub fn recency(j: u32, t_days: f64) -> f64 {
    t_days * (f64::from(j) + 0.5) / f64::from(COLUMNS)
}

/// What a matrix shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// P(alive).
    Alive,
    /// Purchases expected over the horizon.
    Expected,
}

/// The value of one cell.
pub fn value(
    params: &PurchaseParams,
    measure: Measure,
    x: u32,
    t_x: f64,
    t_days: f64,
    horizon_days: f64,
) -> Option<f64> {
    let c = CustomerSummary::new(f64::from(x), t_x, t_days, 0.0).ok()?;
    Some(match measure {
        Measure::Alive => params.probability_alive(&c),
        Measure::Expected => params.expected_purchases(&c, horizon_days),
    })
}

/// The activated family's purchase parameters of a model answer (asked
/// for in days), `None` when it carries none (a failed version).
pub fn purchase_params(m: &pb::Model) -> Option<Result<PurchaseParams, clv_model::ModelError>> {
    FamilyValues::of_model(m).map(|v| v.params())
}

/// How to read each matrix.
pub const HOW_TO_READ_ALIVE: &str = "How to read: find a customer's row by how many times they \
bought again and the column by how long after their first purchase they last bought. Dark \
cells are customers the model thinks are still active; the light cells to the left of a \
row are frequent buyers who have gone quiet for a long time, the ones to win back.";
/// How to read the expected-purchases matrix.
pub const HOW_TO_READ_EXPECTED: &str = "How to read: as the P(alive) matrix, but each cell is \
the number of purchases the model expects from such a customer over the horizon: frequent, \
recent buyers (top right) are the most valuable to keep.";

/// The grid's layout, in pixels.
const LAYOUT: Grid = Grid {
    figure: FIGURE,
    left: 120,
    top: super::HEADER_H + 40,
    cell_w: 52,
    cell_h: 22,
};

/// One matrix as an SVG document.
pub fn matrix(
    model: &pb::Model,
    measure: Measure,
    t_days: f64,
    horizon_days: f64,
) -> Result<String, ChartError> {
    let err = super::draw_error(FIGURE);
    let params = purchase_params(model)
        .ok_or_else(|| ChartError::Draw {
            figure: FIGURE,
            message: "the model has no purchase-model parameters".to_owned(),
        })?
        .map_err(super::draw_error(FIGURE))?;
    let values: Vec<Vec<Option<f64>>> = (1..=MAX_X)
        .rev()
        .map(|x| {
            (0..COLUMNS)
                .map(|j| {
                    value(
                        &params,
                        measure,
                        x,
                        recency(j, t_days),
                        t_days,
                        horizon_days,
                    )
                })
                .collect()
        })
        .collect();
    let top = match measure {
        Measure::Alive => 1.0,
        Measure::Expected => values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0_f64, f64::max),
    };
    let (title, unit, how) = match measure {
        Measure::Alive => (
            "P(alive) by frequency and recency".to_owned(),
            "probability the customer is still active".to_owned(),
            HOW_TO_READ_ALIVE,
        ),
        Measure::Expected => (
            format!(
                "Expected purchases in the next {horizon_days:.0} days by frequency and recency"
            ),
            "purchases".to_owned(),
            HOW_TO_READ_EXPECTED,
        ),
    };
    let width = LAYOUT.left + COLUMNS as i32 * LAYOUT.cell_w + 24;
    let bottom = LAYOUT.top + MAX_X as i32 * LAYOUT.cell_h;
    let note_top = bottom + 40;
    let height = note_top + footnote_lines(how, width as u32) * super::LINE + 12;
    let mut svg = String::new();
    {
        let area =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        area.fill(&WHITE).map_err(&err)?;
        header(
            &area,
            FIGURE,
            &title,
            &format!(
                "Model version {} as of {}; a customer first seen T = {t_days:.0} days before it. Unit: {unit}.",
                model.version,
                instant(&model.as_of)
            ),
            width as u32,
        )?;
        let columns: Vec<String> = (0..COLUMNS)
            .map(|j| (recency(j, t_days).round() as i64).to_string())
            .collect();
        LAYOUT.axes(
            &area,
            "recency: days from the first to the last purchase",
            "repeat purchases",
            &columns,
        )?;
        for (i, row) in values.iter().enumerate() {
            LAYOUT.row_label(&area, i, &(MAX_X - i as u32).to_string())?;
            for (j, v) in row.iter().enumerate() {
                let Some(v) = v else { continue };
                let (x0, y0) = LAYOUT.origin(i, j);
                let fill = band(*v, top);
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + LAYOUT.cell_w - 1, y0 + LAYOUT.cell_h - 1)],
                    fill.filled(),
                ))
                .map_err(&err)?;
                let colour = if fill == BANDS[3] || fill == BANDS[4] {
                    WHITE
                } else {
                    INK
                };
                LAYOUT.value(&area, (x0, y0), &format!("{v:.2}"), colour)?;
            }
        }
        // The scale, one swatch per fifth.
        let text = text_style(12, INK, HPos::Left, VPos::Center);
        label(&area, FIGURE, "scale:", (12, bottom + 18), &text)?;
        for (i, colour) in BANDS.iter().enumerate() {
            let x = 70 + i as i32 * 110;
            area.draw(&Rectangle::new(
                [(x, bottom + 10), (x + 18, bottom + 26)],
                colour.filled(),
            ))
            .map_err(&err)?;
            let (from, to) = (top * i as f64 / 5.0, top * (i + 1) as f64 / 5.0);
            label(
                &area,
                FIGURE,
                &format!("{from:.2}–{to:.2}"),
                (x + 22, bottom + 18),
                &text,
            )?;
        }
        footnote(&area, FIGURE, how, note_top, width as u32)?;
        area.present().map_err(&err)?;
    }
    Ok(svg)
}
