//! Which CSV column holds which transaction field: the header row, mapped
//! by the `--*-column` flags, with the example format's names as defaults
//! (`customer_id,transaction_id,occurred_at,amount,kind,
//! refunded_transaction_id`, optional `cost`).

use anyhow::bail;

/// The column flags of `clvd import`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Columns")]
pub struct ColumnFlags {
    /// Column of the customer id [default: customer_id].
    #[arg(long)]
    pub customer_column: Option<String>,
    /// Column of the transaction id [default: transaction_id]. A file
    /// without it gets derived ids (see the end of `clvd import --help`).
    #[arg(long)]
    pub transaction_column: Option<String>,
    /// Column of the time of the transaction [default: occurred_at].
    #[arg(long)]
    pub time_column: Option<String>,
    /// Column of the amount, a decimal as written (12.34) [default: amount].
    #[arg(long)]
    pub amount_column: Option<String>,
    /// Column of the kind, `purchase` or `refund` (empty: purchase)
    /// [default: kind; without it every row is a purchase].
    #[arg(long)]
    pub kind_column: Option<String>,
    /// Column of a refund's purchase id [default: refunded_transaction_id].
    #[arg(long)]
    pub refunded_column: Option<String>,
    /// Column of a purchase's cost, a decimal (empty: none) [default: cost].
    #[arg(long)]
    pub cost_column: Option<String>,
    /// Field delimiter: one ASCII character, or `tab`.
    #[arg(long, default_value = ",", value_parser = parse_delimiter)]
    pub delimiter: u8,
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!("{s:?} is not one ASCII character (or `tab`)")),
    }
}

/// One mapped column: its position in a row and its header name.
#[derive(Debug, Clone)]
pub struct Column {
    pub index: usize,
    pub name: String,
}

/// The columns of one file.
#[derive(Debug, Clone)]
pub struct Columns {
    pub customer: Column,
    /// `None`: the file has no transaction ids; they are derived.
    pub transaction: Option<Column>,
    pub time: Column,
    pub amount: Column,
    pub kind: Option<Column>,
    pub refunded: Option<Column>,
    pub cost: Option<Column>,
    /// Fields in the header row.
    pub width: usize,
}

impl Columns {
    /// Maps the header row. A column named by a flag must exist; a default
    /// name may be absent only for the optional columns.
    pub fn map(header: &[String], flags: &ColumnFlags) -> anyhow::Result<Self> {
        let find = |flag: &Option<String>, default: &str, option: &str, required: bool| {
            let name = flag.as_deref().unwrap_or(default);
            match header.iter().position(|h| h == name) {
                Some(index) => Ok(Some(Column {
                    index,
                    name: name.to_owned(),
                })),
                None if flag.is_none() && !required => Ok(None),
                None => bail!(
                    "the header has no column {name:?} ({option}); its columns: {}",
                    header.join(", ")
                ),
            }
        };
        let required = |flag, default, option| -> anyhow::Result<Column> {
            find(flag, default, option, true)?
                .ok_or_else(|| anyhow::anyhow!("no column {default:?} ({option})"))
        };
        Ok(Self {
            customer: required(&flags.customer_column, "customer_id", "--customer-column")?,
            transaction: find(
                &flags.transaction_column,
                "transaction_id",
                "--transaction-column",
                false,
            )?,
            time: required(&flags.time_column, "occurred_at", "--time-column")?,
            amount: required(&flags.amount_column, "amount", "--amount-column")?,
            kind: find(&flags.kind_column, "kind", "--kind-column", false)?,
            refunded: find(
                &flags.refunded_column,
                "refunded_transaction_id",
                "--refunded-column",
                false,
            )?,
            cost: find(&flags.cost_column, "cost", "--cost-column", false)?,
            width: header.len(),
        })
    }

    /// The CSV column a transaction field (a violation's path relative to
    /// the transaction: `amount.units`, `refunded_transaction_id`) came
    /// from; empty for the transaction as a whole.
    pub fn of_field(&self, field: &str) -> String {
        let top = field.split(['.', '[']).next().unwrap_or_default();
        let name = |c: &Option<Column>, fallback: &str| {
            c.as_ref()
                .map_or_else(|| fallback.to_owned(), |c| c.name.clone())
        };
        match top {
            "customer_id" => self.customer.name.clone(),
            "transaction_id" => name(&self.transaction, "(derived transaction id)"),
            "occurred_at" => self.time.name.clone(),
            "amount" => self.amount.name.clone(),
            "cost" => name(&self.cost, "cost"),
            "kind" => name(&self.kind, "(kind: purchase)"),
            "refunded_transaction_id" => name(&self.refunded, "refunded_transaction_id"),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> ColumnFlags {
        ColumnFlags {
            customer_column: None,
            transaction_column: None,
            time_column: None,
            amount_column: None,
            kind_column: None,
            refunded_column: None,
            cost_column: None,
            delimiter: b',',
        }
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_map_the_example_format_and_optional_columns_may_be_absent() {
        let c = Columns::map(&header(&["amount", "occurred_at", "customer_id"]), &flags()).unwrap();
        assert_eq!((c.customer.index, c.time.index, c.amount.index), (2, 1, 0));
        assert!(c.transaction.is_none() && c.kind.is_none() && c.cost.is_none());
        assert_eq!(c.of_field("amount.nanos"), "amount");
        assert_eq!(c.of_field(""), "");
    }

    #[test]
    fn a_flag_names_a_column_that_must_exist() {
        let mut f = flags();
        f.customer_column = Some("client".into());
        let e = Columns::map(&header(&["customer_id", "occurred_at", "amount"]), &f).unwrap_err();
        assert!(e.to_string().contains("--customer-column"), "{e}");
        let e = Columns::map(&header(&["customer_id", "amount"]), &flags()).unwrap_err();
        assert!(e.to_string().contains("--time-column"), "{e}");
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert!(parse_delimiter(";;").is_err());
    }
}
