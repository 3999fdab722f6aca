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
                    t.add_row(row.iter().map(text));
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
                let rows: Vec<Value> = self
                    .rows
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
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &rows)?;
                writeln!(out)?;
            }
        }
        Ok(())
    }

    /// Prints the table on standard output.
    pub fn print(&self, format: Format) -> anyhow::Result<()> {
        self.write(format, &mut std::io::stdout().lock())
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
