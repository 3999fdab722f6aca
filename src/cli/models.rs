//! `clvd models`: the fitted model versions, newest first (ListModels,
//! every page), one row each.

use serde_json::Value;

use super::family_values::FamilyValues;
use super::{
    output::{status_error, time_cell},
    Connection, Format, Table,
};
use crate::pb;

/// Flags of `clvd models`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelsArgs {
    /// At most this many versions (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// The columns of one model row, shared by the commands that print models.
pub fn model_table() -> Table {
    Table::new([
        "version",
        "state",
        "active",
        "as_of",
        "customers",
        "family",
        "r",
        "alpha_days",
        "a",
        "b",
        "s",
        "beta_days",
        "p",
        "q",
        "gamma",
        "converged",
        "failure",
        "candidates",
    ])
}

/// One model as a row of [`model_table`].
pub fn model_row(m: &pb::Model) -> Vec<Value> {
    let gg = m.gamma_gamma.as_ref();
    let num = |v: Option<f64>| v.map_or(Value::Null, Value::from);
    // The activated family's parameters (BG/NBD and MBG/NBD: a, b;
    // Pareto/NBD: s, beta).
    let params = FamilyValues::of_model(m);
    let param = |name: &str| num(params.and_then(|p| p.get(name)));
    vec![
        m.version.into(),
        pb::ModelState::try_from(m.state)
            .map(|s| {
                s.as_str_name()
                    .trim_start_matches("MODEL_STATE_")
                    .to_owned()
            })
            .unwrap_or_default()
            .into(),
        m.active.into(),
        time_cell(&m.as_of),
        m.customers.into(),
        super::fit::family_name(m.family).into(),
        param("r"),
        param("alpha"),
        param("a"),
        param("b"),
        param("s"),
        param("beta"),
        num(gg.map(|p| p.p)),
        num(gg.map(|p| p.q)),
        num(gg.map(|p| p.gamma)),
        m.converged.into(),
        m.failure.clone().into(),
        super::fit::candidates_cell(m),
    ]
}

pub async fn run(conn: &Connection, format: Format, args: ModelsArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?.models();
    let mut table = model_table();
    let mut page_token = String::new();
    while table.rows.len() < args.limit {
        let page = client
            .list_models(pb::ListModelsRequest {
                page_size: (args.limit - table.rows.len()).min(100) as i32,
                page_token,
                ..Default::default()
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for m in &page.models {
            table.push(model_row(m));
        }
        if page.next_page_token.is_empty() || page.models.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    table.print(format)
}
