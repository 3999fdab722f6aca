//! The Pareto curve of value: customers ranked by total value (historical
//! plus predicted) from the most valuable down, and the share of all value
//! the top share of them holds (GetSegmentReport's `value_curve`). The
//! diagonal is what equal customers would draw; the further the curve
//! bows above it, the more the value is concentrated.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{footnote, footnote_lines, header, instant, label, text_style, ChartError, INK};
use crate::pb;

const FIGURE: &str = "Pareto curve";

/// How to read the figure.
pub const HOW_TO_READ: &str = "How to read: go right to a share of customers (the most \
valuable first) and up to the curve: that is the share of all value (historical plus \
predicted) those customers hold. The thin grey diagonal is a base where every customer is worth \
the same; the higher the curve bows above it, the more the value rests on few customers.";

/// The colour of the curve (tests find the curve by it).
pub const CURVE: RGBColor = RGBColor(0x08, 0x30, 0x6B);
/// The colour of the equal-shares diagonal.
pub const DIAGONAL: RGBColor = RGBColor(0x99, 0x99, 0x99);

const WIDTH: u32 = 720;
const PLOT_H: u32 = 420;

/// The share of value the top `share` of customers hold, read off the
/// curve by linear interpolation between its points (from (0, 0)).
pub fn value_share_at(curve: &[pb::ValueCurvePoint], share: f64) -> Option<f64> {
    let mut previous = (0.0, 0.0);
    for p in curve {
        if p.customer_share >= share {
            let (x0, y0) = previous;
            let t = if p.customer_share > x0 {
                (share - x0) / (p.customer_share - x0)
            } else {
                1.0
            };
            return Some(y0 + t * (p.value_share - y0));
        }
        previous = (p.customer_share, p.value_share);
    }
    None
}

/// The figure of `report`'s curve as an SVG document; `None` when the
/// report has no curve (no positive total value).
pub fn pareto_chart(report: &pb::SegmentReport) -> Result<Option<String>, ChartError> {
    let curve = &report.value_curve;
    let Some(top_fifth) = value_share_at(curve, 0.2) else {
        return Ok(None);
    };
    let customers = curve.last().map_or(0, |p| p.customers);
    let note = format!(
        "{HOW_TO_READ} Value here: historical plus {}.",
        super::scored_at_fit()
    );
    let note_h = footnote_lines(&note, WIDTH) as u32 * super::LINE as u32 + 16;
    let height = super::HEADER_H as u32 + PLOT_H + note_h;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let err = super::draw_error(FIGURE);
        area.fill(&WHITE).map_err(&err)?;
        header(
            &area,
            FIGURE,
            "Share of value by share of customers (Pareto curve)",
            &format!(
                "{customers} customers as scored by model version {} (as of {}). Value: \
historical plus predicted. The top 20% of customers hold {:.1}% of it.",
                report.model_version,
                instant(&report.model_as_of),
                top_fifth * 100.0
            ),
            WIDTH,
        )?;
        let plot = area.margin(super::HEADER_H, note_h, 0, 20);
        let mut chart = ChartBuilder::on(&plot)
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..100.0, 0.0..100.0)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("customers, most valuable first (% of all)")
            .y_desc("their share of all value (%)")
            .x_labels(11)
            .y_labels(11)
            .light_line_style(super::GRID.mix(0.5))
            .bold_line_style(super::GRID)
            .axis_desc_style((super::FONT, super::px(13)))
            .label_style((super::FONT, super::px(12)))
            .draw()
            .map_err(&err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (100.0, 100.0)],
                DIAGONAL.stroke_width(1),
            ))
            .map_err(&err)?;
        chart
            .draw_series(LineSeries::new(
                std::iter::once((0.0, 0.0)).chain(
                    curve
                        .iter()
                        .map(|p| (p.customer_share * 100.0, p.value_share * 100.0)),
                ),
                CURVE.stroke_width(2),
            ))
            .map_err(&err)?;
        // The top-20% reading, marked on the curve.
        let at = chart.backend_coord(&(20.0, top_fifth * 100.0));
        area.draw(&Circle::new(at, 4, CURVE.filled()))
            .map_err(&err)?;
        let text = text_style(12, INK, HPos::Left, VPos::Center);
        label(
            &area,
            FIGURE,
            &format!("top 20%: {:.1}% of value", top_fifth * 100.0),
            (at.0 + 10, at.1 + 14),
            &text,
        )?;
        footnote(
            &area,
            FIGURE,
            &note,
            super::HEADER_H + PLOT_H as i32 + 8,
            WIDTH,
        )?;
        area.present().map_err(&err)?;
    }
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(customers: u64, customer_share: f64, value_share: f64) -> pb::ValueCurvePoint {
        pb::ValueCurvePoint {
            customers,
            customer_share,
            value_share,
        }
    }

    #[test]
    fn the_share_at_a_point_interpolates_the_curve() {
        let curve = [point(1, 0.1, 0.5), point(3, 0.3, 0.7), point(10, 1.0, 1.0)];
        assert!((value_share_at(&curve, 0.05).unwrap() - 0.25).abs() < 1e-12);
        assert!((value_share_at(&curve, 0.2).unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(value_share_at(&curve, 1.0), Some(1.0));
        assert_eq!(value_share_at(&[], 0.2), None);
    }
}
