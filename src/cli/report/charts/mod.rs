//! The report's figures as standalone SVG documents, drawn with `plotters`
//! (its SVG backend: rectangles, lines and `<text>` elements, no font files
//! and nothing fetched). Each figure carries its title, axes and units, the
//! as-of time and model version, and a sentence on how to read it.
//!
//! The heatmap and the bar chart are laid out here in pixels from plotters'
//! primitives (rectangles, paths, text) rather than with its `ChartBuilder`
//! mesh: the mesh places ticks at round numbers of a numeric axis and
//! cannot label categories (cohorts, periods, calibration groups) at the
//! centre of their cells and bars. The revenue lines, a numeric chart, use
//! the mesh.

pub mod alive;
pub mod calibration;
pub mod heatmap;
pub mod pareto;
pub mod revenue;

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

/// A figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// plotters reported a drawing error.
    #[error("drawing the {figure} figure: {message}")]
    Draw {
        figure: &'static str,
        message: String,
    },
}

/// Wraps a plotters error with the figure it belongs to.
pub(crate) fn draw_error<E: std::fmt::Display>(figure: &'static str) -> impl Fn(E) -> ChartError {
    move |e| ChartError::Draw {
        figure,
        message: e.to_string(),
    }
}

/// The root drawing area of an SVG figure.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The font of every label (the reader's own sans-serif).
pub(crate) const FONT: &str = "sans-serif";

/// Text colours.
pub(crate) const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(crate) const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
pub(crate) const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);

/// plotters' SVG backend writes `font-size` as the style's size / 1.24;
/// sizes here are the pixels wanted on the page.
pub(crate) fn px(size: u32) -> f64 {
    f64::from(size) * 1.24
}

/// A text style of `size` pixels anchored at `h`, `v`.
pub(crate) fn text_style(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, px(size))
        .into_font()
        .color(&color)
        .pos(Pos::new(h, v))
}

/// Draws `text` at `(x, y)`.
pub(crate) fn label(
    area: &Area<'_>,
    figure: &'static str,
    text: &str,
    (x, y): (i32, i32),
    style: &TextStyle<'_>,
) -> Result<(), ChartError> {
    area.draw(&Text::new(text.to_owned(), (x, y), style.clone()))
        .map_err(draw_error(figure))
}

/// Height of the header: a figure's content starts below it.
pub(crate) const HEADER_H: i32 = 72;

/// The header of every figure: its title in bold, then the facts (as of,
/// model version, units) on at most two lines of `width`.
pub(crate) fn header(
    area: &Area<'_>,
    figure: &'static str,
    title: &str,
    facts: &str,
    width: u32,
) -> Result<(), ChartError> {
    let bold = (FONT, px(17))
        .into_font()
        .style(FontStyle::Bold)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    label(area, figure, title, (12, 10), &bold)?;
    let style = text_style(12, MUTED, HPos::Left, VPos::Top);
    for (i, line) in wrap(facts, chars_per_line(width, 12))
        .iter()
        .take(2)
        .enumerate()
    {
        label(area, figure, line, (12, 34 + 16 * i as i32), &style)?;
    }
    Ok(())
}

/// A grid of equal cells below the header (the retention heatmap, the
/// P(alive) and expected-purchases matrices): a title over the columns, a
/// title over the row labels, a label per column, a label left of each row
/// and a value centred in each cell.
pub(crate) struct Grid {
    pub figure: &'static str,
    /// x of the first column's left edge.
    pub left: i32,
    /// y of the first row's top edge.
    pub top: i32,
    pub cell_w: i32,
    pub cell_h: i32,
}

impl Grid {
    /// The top-left corner of the cell in `row`, `column`.
    pub fn origin(&self, row: usize, column: usize) -> (i32, i32) {
        (
            self.left + column as i32 * self.cell_w,
            self.top + row as i32 * self.cell_h,
        )
    }

    /// The column title centred over the columns, the row title right-aligned
    /// over the row labels, and the column labels, between the header and
    /// the grid.
    pub fn axes(
        &self,
        area: &Area<'_>,
        column_title: &str,
        row_title: &str,
        columns: &[String],
    ) -> Result<(), ChartError> {
        let centre = text_style(12, INK, HPos::Center, VPos::Center);
        let width = columns.len() as i32 * self.cell_w;
        let title_at = (self.left + width / 2, HEADER_H + 4);
        label(area, self.figure, column_title, title_at, &centre)?;
        let right = text_style(12, INK, HPos::Right, VPos::Center);
        label(
            area,
            self.figure,
            row_title,
            (self.left - 8, HEADER_H + 22),
            &right,
        )?;
        for (j, text) in columns.iter().enumerate() {
            let x = self.left + j as i32 * self.cell_w + self.cell_w / 2;
            label(area, self.figure, text, (x, HEADER_H + 22), &centre)?;
        }
        Ok(())
    }

    /// The label left of `row`.
    pub fn row_label(&self, area: &Area<'_>, row: usize, text: &str) -> Result<(), ChartError> {
        let (_, y0) = self.origin(row, 0);
        let style = text_style(12, INK, HPos::Right, VPos::Center);
        label(
            area,
            self.figure,
            text,
            (self.left - 8, y0 + self.cell_h / 2),
            &style,
        )
    }

    /// `text` centred in the cell at `(x0, y0)`, in `colour`.
    pub fn value(
        &self,
        area: &Area<'_>,
        (x0, y0): (i32, i32),
        text: &str,
        colour: RGBColor,
    ) -> Result<(), ChartError> {
        let style = text_style(11, colour, HPos::Center, VPos::Center);
        let at = (x0 + self.cell_w / 2, y0 + self.cell_h / 2);
        label(area, self.figure, text, at, &style)
    }
}

/// What the predicted value of the fit's scores covers (segments, value
/// tiers, the Pareto curve, the at-risk ranking): the service scores every
/// customer at the fit with the API's default horizon and rate, which a
/// report's options cannot change.
pub fn scored_at_fit() -> String {
    let o = clv_model::ScoreOptions::default();
    format!(
        "predicted value over the next {} model months (of 30 days) at a {} % annual \
discount rate, as scored at the fit",
        o.horizon_months,
        o.annual_discount_rate * 100.0
    )
}

/// The how-to-read sentence at the foot of a figure, wrapped to `width`
/// pixels, from `y` down; returns the y after its last line.
pub(crate) fn footnote(
    area: &Area<'_>,
    figure: &'static str,
    sentence: &str,
    y: i32,
    width: u32,
) -> Result<i32, ChartError> {
    let style = text_style(12, MUTED, HPos::Left, VPos::Top);
    let mut y = y;
    for line in wrap(sentence, chars_per_line(width, 12)) {
        label(area, figure, &line, (12, y), &style)?;
        y += LINE;
    }
    Ok(y)
}

/// Height of one footnote line.
pub(crate) const LINE: i32 = 16;

/// Lines a footnote of `sentence` takes at `width`.
pub(crate) fn footnote_lines(sentence: &str, width: u32) -> i32 {
    wrap(sentence, chars_per_line(width, 12)).len() as i32
}

/// How many characters of a `size`-pixel sans-serif fit in `width`
/// (about 0.55 em per character, rounded down, keeping a margin).
fn chars_per_line(width: u32, size: u32) -> usize {
    ((width.saturating_sub(24)) as f64 / (f64::from(size) * 0.55)) as usize
}

/// Splits `text` into lines of at most `max` characters at spaces.
pub(crate) fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `#rrggbb` of a colour, as the SVG backend writes it.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// An RFC 3339 time in UTC (seconds), or `unknown`.
pub(crate) fn instant(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map_or_else(
            || "unknown".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// Money as f64 currency units (for positions on an axis only; printed
/// figures are decimals).
pub(crate) fn units(m: &crate::pb::Money) -> f64 {
    m.units as f64 + f64::from(m.nanos) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_within_the_width() {
        let lines = wrap("one two three four five six", 9);
        assert_eq!(lines, ["one two", "three", "four five", "six"]);
        assert!(wrap("", 5).is_empty());
    }
}
