//! What the client prints: one [`Table`] per answer, rendered as a
//! terminal table (comfy-table), CSV or JSON (an array of objects); money
//! as exact decimals with the currency; a failed call as its code, message
//! and field violations.

use std::io::Write;

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement};
use serde_json::Value;
use tonic_types::StatusExt;

use crate::pb;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for a terminal.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
    /// A standalone SVG figure, for the commands that draw one (report
    /// cohorts, report segments, model, evaluate): to --out FILE, or
    /// standard output. Other commands refuse it.
    Svg,
}

/// The error of a table printed as SVG (the commands that draw nothing
/// refuse `svg` before calling the server; see [`super::draws_figure`]).
fn no_figure() -> anyhow::Error {
    anyhow::anyhow!("-o/--format svg: this answer is a table, not a figure; use table, csv or json")
}

/// Rows under named columns. Cells are JSON values so that JSON output
/// keeps numbers as numbers; tables and CSV print them as text.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// Writes the table to `out` in `format`.
    pub fn write(&self, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
        match format {
            Format::Table => {
                let mut t = comfy_table::Table::new();
                t.load_preset(UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_header(&self.headers);
                for row in &self.rows {
                    t.add_row(row.iter().map(terminal_text));
                }
                writeln!(out, "{t}")?;
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.headers)?;
                for row in &self.rows {
                    w.write_record(row.iter().map(text))?;
                }
                w.flush()?;
            }
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, &self.objects())?;
                writeln!(out)?;
            }
            Format::Svg => return Err(no_figure()),
        }
        Ok(())
    }

    /// The rows as JSON objects keyed by the headers.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.headers
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    }

    /// A `field | value` table of the first row (one line per column).
    pub fn transposed(&self) -> Table {
        let mut t = Table::new(["field", "value"]);
        if let Some(row) = self.rows.first() {
            for (h, v) in self.headers.iter().zip(row) {
                t.push(vec![Value::String(h.clone()), v.clone()]);
            }
        }
        t
    }

    /// Prints the table on standard output.
    pub fn print(&self, format: Format) -> anyhow::Result<()> {
        self.write(format, &mut std::io::stdout().lock())
    }
}

/// Prints one answer of several parts (e.g. a summary and its rows): in a
/// table, each part under its title; in JSON, one object with a key per
/// part (a one-row record as an object, rows as an array); in CSV, one
/// block per part, each with its header row, separated by an empty line.
pub fn print_sections(format: Format, sections: &[(&str, Section)]) -> anyhow::Result<()> {
    let out = &mut std::io::stdout().lock();
    match format {
        Format::Json => {
            let object: serde_json::Map<String, Value> = sections
                .iter()
                .map(|(title, section)| ((*title).to_owned(), section.json()))
                .collect();
            serde_json::to_writer_pretty(&mut *out, &Value::Object(object))?;
            writeln!(out)?;
        }
        Format::Table | Format::Csv => {
            for (i, (title, section)) in sections.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                if format == Format::Table {
                    writeln!(out, "{title}")?;
                }
                section.write(format, out)?;
            }
        }
        Format::Svg => return Err(no_figure()),
    }
    Ok(())
}

/// One part of an answer printed by [`print_sections`].
#[derive(Debug, Clone)]
pub enum Section {
    /// One row, printed as a field/value table in a terminal.
    Record(Table),
    /// Rows under columns.
    Rows(Table),
}

impl Section {
    fn json(&self) -> Value {
        match self {
            Section::Record(t) => t.objects().into_iter().next().unwrap_or(Value::Null),
            Section::Rows(t) => Value::Array(t.objects()),
        }
    }

    fn write(&self, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
        match (self, format) {
            (Section::Record(t), Format::Table) => t.transposed().write(format, out),
            (Section::Record(_), Format::Json) => {
                serde_json::to_writer_pretty(&mut *out, &self.json())?;
                writeln!(out)?;
                Ok(())
            }
            (Section::Record(t) | Section::Rows(t), _) => t.write(format, out),
        }
    }

    /// Prints this part alone: a record as a field/value table, one CSV
    /// row or one JSON object; rows as [`Table::print`] does.
    pub fn print(&self, format: Format) -> anyhow::Result<()> {
        self.write(format, &mut std::io::stdout().lock())
    }
}

/// A cell for a terminal: as [`text`], but fractional numbers rounded to
/// six significant digits (CSV and JSON keep every digit).
fn terminal_text(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => significant(x, 6),
        _ => text(v),
    }
}

/// `x` with `digits` significant digits, trailing zeros dropped; very
/// small magnitudes in scientific notation.
fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..15).contains(&magnitude) {
        return format!("{:.*e}", (digits - 1) as usize, x);
    }
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A cell as text: strings without quotes, null as empty.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Money as an exact decimal with its currency, `1234.50 USD` (at least
/// two decimals, at most nine, no trailing zeros beyond two).
pub fn money(m: &pb::Money) -> String {
    let nanos = i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos);
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let mut frac = format!("{:09}", abs % 1_000_000_000);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    let whole = abs / 1_000_000_000;
    if m.currency_code.is_empty() {
        format!("{sign}{whole}.{frac}")
    } else {
        format!("{sign}{whole}.{frac} {}", m.currency_code)
    }
}

/// An optional Money cell (null when absent).
pub fn money_cell(m: &Option<pb::Money>) -> Value {
    m.as_ref().map_or(Value::Null, |m| Value::String(money(m)))
}

/// An optional timestamp cell, RFC 3339 in UTC (null when absent).
pub fn time_cell(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

/// An optional number cell (null when absent).
pub fn number_cell<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

/// A proto enum value's name without its prefix, as the flags spell it:
/// `CHURN_RISK_BAND_HIGH` with prefix `CHURN_RISK_BAND_` is `high`.
pub fn enum_cell(name: &str, prefix: &str) -> Value {
    Value::String(name.trim_start_matches(prefix).to_ascii_lowercase())
}

/// A duration cell in seconds (null when absent).
pub fn seconds_cell(d: &Option<prost_types::Duration>) -> Value {
    d.as_ref().map_or(Value::Null, |d| {
        Value::from(d.seconds as f64 + f64::from(d.nanos) / 1e9)
    })
}

/// A failed call as an error for people: the code, the message, and each
/// field violation the server listed.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Ok(details) = status.check_error_details() {
        if let Some(bad) = details.bad_request() {
            for v in &bad.field_violations {
                text.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
    }
    anyhow::anyhow!(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(units: i64, nanos: i32) -> pb::Money {
        pb::Money {
            currency_code: "USD".into(),
            units,
            nanos,
        }
    }

    #[test]
    fn money_is_an_exact_decimal_with_its_currency() {
        assert_eq!(money(&m(12, 340_000_000)), "12.34 USD");
        assert_eq!(money(&m(0, 0)), "0.00 USD");
        assert_eq!(money(&m(-1, -500_000_000)), "-1.50 USD");
        assert_eq!(money(&m(0, -1)), "-0.000000001 USD");
        assert_eq!(
            money(&m(i64::MAX, 999_999_999)),
            "9223372036854775807.999999999 USD"
        );
        assert_eq!(
            money(&m(i64::MIN, -999_999_999)),
            "-9223372036854775808.999999999 USD"
        );
    }

    #[test]
    fn a_terminal_shows_six_significant_digits() {
        assert_eq!(significant(0.5541335356712289, 6), "0.554134");
        assert_eq!(significant(-41757.23157464797, 6), "-41757.2");
        assert_eq!(significant(194.0, 6), "194");
        assert_eq!(significant(0.99999731235, 6), "0.999997");
        assert_eq!(significant(2.6876416701899248e-6, 6), "2.68764e-6");
        assert_eq!(terminal_text(&Value::from(7)), "7");
    }

    #[test]
    fn csv_and_json_keep_every_cell() {
        let mut t = Table::new(["id", "n", "note"]);
        t.push(vec!["a,b".into(), 3.into(), Value::Null]);
        let mut csv_out = Vec::new();
        t.write(Format::Csv, &mut csv_out).unwrap();
        assert_eq!(
            String::from_utf8(csv_out).unwrap(),
            "id,n,note\n\"a,b\",3,\n"
        );
        let mut json_out = Vec::new();
        t.write(Format::Json, &mut json_out).unwrap();
        let v: Value = serde_json::from_slice(&json_out).unwrap();
        assert_eq!(v, serde_json::json!([{"id": "a,b", "n": 3, "note": null}]));
    }
}
