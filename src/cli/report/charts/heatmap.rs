//! The cohort retention heatmap: one row per cohort, one column per period
//! k, each cell coloured by the share of the cohort active in the period
//! (one of [`BANDS`]) with the value printed in it, as the terminal table
//! prints it (`cohorts::cell`). A partial period is outlined in
//! [`PARTIAL_OUTLINE`] and its value ends in `*`; a forecast period is
//! hatched grey ([`FORECAST_FILL`]) and shows `~` and the expected purchase
//! occasions per customer (the model forecasts purchases, not who is
//! active). A legend and the how-to-read sentence are below the grid.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{
    footnote, footnote_lines, header, instant, label, text_style, Area, ChartError, Grid, INK,
};
use crate::{
    cli::report::cohorts::{cell, Metric},
    pb,
};

const FIGURE: &str = "cohort retention heatmap";

/// The colour bands of the share active: a cell whose retention rate is at
/// least `from` (and below the next band's) has `colour`. A sequential blue
/// scale (ColorBrewer "Blues"), light to dark as the share grows.
pub const BANDS: [(f64, RGBColor); 6] = [
    (0.0, RGBColor(0xEF, 0xF3, 0xFF)),
    (0.05, RGBColor(0xC6, 0xDB, 0xEF)),
    (0.10, RGBColor(0x9E, 0xCA, 0xE1)),
    (0.20, RGBColor(0x6B, 0xAE, 0xD6)),
    (0.40, RGBColor(0x31, 0x82, 0xBD)),
    (0.70, RGBColor(0x08, 0x51, 0x9C)),
];

/// The outline of a partial period's cell (drawn twice, 2 px).
pub const PARTIAL_OUTLINE: RGBColor = RGBColor(0xE6, 0x55, 0x0D);
/// The fill of a forecast cell (hatched with [`HATCH`]).
pub const FORECAST_FILL: RGBColor = RGBColor(0xF2, 0xF2, 0xF2);
/// The hatching of a forecast cell.
pub const HATCH: RGBColor = RGBColor(0xB0, 0xB0, 0xB0);
/// The fill of a cell without a rate (an empty cohort).
pub const EMPTY_FILL: RGBColor = RGBColor(0xFF, 0xFF, 0xFF);

/// How to read the figure.
pub const HOW_TO_READ: &str = "How to read: each row is the customers acquired in one period \
(its first day and size on the left); the cell in column k is the share of them with a \
purchase in the k-th period after it, darker meaning more stay active. Read a row left to \
right to see one cohort fade; read a column top to bottom to compare cohorts at the same age. \
An orange outline and * mark a period not over at the as-of time (its share is still \
growing); hatched grey cells with ~ are the model's forecast of purchases per customer, \
not a share.";

/// The band colour of a retention rate.
pub fn band(rate: f64) -> RGBColor {
    BANDS
        .iter()
        .rev()
        .find(|(from, _)| rate >= *from)
        .map_or(BANDS[0].1, |(_, c)| *c)
}

/// The label of band `i` in the legend: `5–10%`, `≥ 70%`.
pub fn band_label(i: usize) -> String {
    let pct = |x: f64| format!("{}", (x * 100.0).round());
    match BANDS.get(i + 1) {
        Some((to, _)) => format!("{}–{}%", pct(BANDS[i].0), pct(*to)),
        None => format!("≥ {}%", pct(BANDS[i].0)),
    }
}

/// Whether text on `fill` should be white (the two darkest bands).
fn dark(fill: RGBColor) -> bool {
    fill == BANDS[4].1 || fill == BANDS[5].1
}

/// The narrowest heatmap, in pixels.
const MIN_WIDTH: i32 = 760;
/// The grid's layout, in pixels.
const LAYOUT: Grid = Grid {
    figure: FIGURE,
    left: 170,
    top: super::HEADER_H + 40,
    cell_w: 48,
    cell_h: 22,
};

/// The heatmap of `report` as an SVG document.
pub fn retention_heatmap(report: &pb::CohortReport) -> Result<String, ChartError> {
    let periods = report
        .cohorts
        .iter()
        .map(|c| c.periods.len())
        .max()
        .unwrap_or(0) as i32;
    let rows = report.cohorts.len() as i32;
    let width = (LAYOUT.left + periods * LAYOUT.cell_w + 24).max(MIN_WIDTH);
    let grid_bottom = LAYOUT.top + rows * LAYOUT.cell_h;
    let legend_top = grid_bottom + 18;
    let note_top = legend_top + 2 * 24 + 8;
    let height = note_top + footnote_lines(HOW_TO_READ, width as u32) * super::LINE + 12;
    let mut svg = String::new();
    {
        let area =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
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
            "Cohort retention: share of each cohort active, period by period",
            &format!(
                "As of {}; periods in {}{model}. Unit: % of the cohort's customers.",
                instant(&report.as_of),
                report.time_zone
            ),
            width as u32,
        )?;
        let columns: Vec<String> = (0..periods).map(|k| k.to_string()).collect();
        LAYOUT.axes(
            &area,
            "period k after acquisition",
            "cohort (size)",
            &columns,
        )?;
        for (i, c) in report.cohorts.iter().enumerate() {
            LAYOUT.row_label(&area, i, &format!("{} ({})", c.period_label, c.size))?;
            for p in &c.periods {
                draw_cell(&area, c, p, LAYOUT.origin(i, p.k as usize))?;
            }
        }
        legend(&area, legend_top)?;
        footnote(&area, FIGURE, HOW_TO_READ, note_top, width as u32)?;
        area.present().map_err(&err)?;
    }
    Ok(svg)
}

/// One cell: its fill, its marks, its value.
fn draw_cell(
    area: &Area<'_>,
    c: &pb::Cohort,
    p: &pb::CohortPeriod,
    (x0, y0): (i32, i32),
) -> Result<(), ChartError> {
    let err = super::draw_error(FIGURE);
    let (x1, y1) = (x0 + LAYOUT.cell_w - 1, y0 + LAYOUT.cell_h - 1);
    let fill = if p.forecast {
        FORECAST_FILL
    } else {
        p.retention_rate.map_or(EMPTY_FILL, band)
    };
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.filled()))
        .map_err(&err)?;
    if p.forecast {
        hatch(area, (x0, y0), (x1, y1))?;
    }
    if p.partial {
        for inset in 0..2 {
            area.draw(&Rectangle::new(
                [(x0 + inset, y0 + inset), (x1 - inset, y1 - inset)],
                PARTIAL_OUTLINE.stroke_width(1),
            ))
            .map_err(&err)?;
        }
    }
    let text = cell(c, p, Metric::Retention);
    if !text.is_empty() {
        let colour = if !p.forecast && dark(fill) {
            WHITE
        } else {
            INK
        };
        LAYOUT.value(area, (x0, y0), &text, colour)?;
    }
    Ok(())
}

/// Diagonal hatching inside a rectangle (lines every 8 px, clipped to it).
fn hatch(area: &Area<'_>, (x0, y0): (i32, i32), (x1, y1): (i32, i32)) -> Result<(), ChartError> {
    let err = super::draw_error(FIGURE);
    let (w, h) = (x1 - x0, y1 - y0);
    let mut d = 4;
    while d < w + h {
        // The line x - x0 + (y1 - y) = d, clipped to the rectangle.
        let start = (x0 + (d - h).max(0), y1 - d.min(h));
        let end = (x0 + d.min(w), y1 - (d - w).max(0));
        area.draw(&PathElement::new(vec![start, end], HATCH.stroke_width(1)))
            .map_err(&err)?;
        d += 8;
    }
    Ok(())
}

/// The legend: a swatch per band, then the partial and forecast marks.
fn legend(area: &Area<'_>, top: i32) -> Result<(), ChartError> {
    let err = super::draw_error(FIGURE);
    let text = text_style(12, INK, HPos::Left, VPos::Center);
    label(area, FIGURE, "share active:", (12, top + 8), &text)?;
    let mut x = 110;
    for (i, (_, colour)) in BANDS.iter().enumerate() {
        area.draw(&Rectangle::new(
            [(x, top), (x + 18, top + 16)],
            colour.filled(),
        ))
        .map_err(&err)?;
        let name = band_label(i);
        label(area, FIGURE, &name, (x + 22, top + 8), &text)?;
        x += 22 + 8 * name.chars().count() as i32 + 14;
    }
    let y = top + 24;
    area.draw(&Rectangle::new([(12, y), (30, y + 16)], WHITE.filled()))
        .map_err(&err)?;
    for inset in 0..2 {
        area.draw(&Rectangle::new(
            [(12 + inset, y + inset), (30 - inset, y + 16 - inset)],
            PARTIAL_OUTLINE.stroke_width(1),
        ))
        .map_err(&err)?;
    }
    label(
        area,
        FIGURE,
        "* partial period (not over at the as-of time)",
        (36, y + 8),
        &text,
    )?;
    let fx = 360;
    area.draw(&Rectangle::new(
        [(fx, y), (fx + 18, y + 16)],
        FORECAST_FILL.filled(),
    ))
    .map_err(&err)?;
    hatch(area, (fx, y), (fx + 18, y + 16))?;
    label(
        area,
        FIGURE,
        "~ forecast: expected purchases per customer",
        (fx + 24, y + 8),
        &text,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_rate_in_order() {
        assert_eq!(band(0.0), BANDS[0].1);
        assert_eq!(band(0.049), BANDS[0].1);
        assert_eq!(band(0.05), BANDS[1].1);
        assert_eq!(band(0.5), BANDS[4].1);
        assert_eq!(band(1.0), BANDS[5].1);
        assert_eq!(band_label(0), "0–5%");
        assert_eq!(band_label(5), "≥ 70%");
    }
}
