//! The example data set of the quick start (`examples/data/transactions.csv`):
//! the committed file is what its generator writes now, every row passes the
//! service's own checks over ImportTransactions, and it makes a model and a
//! cohort report worth reading.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use clvd::api::pb::{self, model_service_client::ModelServiceClient};

use crate::{helpers::*, report_cohorts::reports};

#[path = "../../examples/make_example_data/generate.rs"]
mod generate;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/transactions.csv"
);

/// One CSV row as the example's columns spell it.
#[derive(Debug)]
struct Row {
    customer_id: String,
    transaction_id: String,
    occurred_at: DateTime<Utc>,
    cents: i64,
    kind: String,
    refunded_transaction_id: String,
}

fn rows(text: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header.join(","), generate::HEADER);
    reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV record");
            let (units, fraction) = r[3].split_once('.').expect("amount with cents");
            assert_eq!(fraction.len(), 2, "{:?}: dollars and cents", &r[3]);
            Row {
                customer_id: r[0].to_owned(),
                transaction_id: r[1].to_owned(),
                occurred_at: DateTime::parse_from_rfc3339(&r[2])
                    .expect("RFC 3339 time")
                    .with_timezone(&Utc),
                cents: units.parse::<i64>().expect("units") * 100
                    + fraction.parse::<i64>().expect("cents"),
                kind: r[4].to_owned(),
                refunded_transaction_id: r[5].to_owned(),
            }
        })
        .collect()
}

fn transaction(row: &Row) -> pb::Transaction {
    match row.kind.as_str() {
        "purchase" => {
            assert!(row.refunded_transaction_id.is_empty(), "{row:?}");
            purchase(
                &row.customer_id,
                &row.transaction_id,
                row.occurred_at,
                row.cents,
            )
        }
        "refund" => refund(
            &row.customer_id,
            &row.transaction_id,
            &row.refunded_transaction_id,
            row.occurred_at,
            row.cents,
        ),
        other => panic!("unknown kind {other:?} in {row:?}"),
    }
}

/// 2026-10-31, as the quick start asks: the end of that day, UTC.
fn as_of() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 10, 31)
        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .expect("a valid instant")
        .and_utc()
}

#[test]
fn the_committed_file_is_what_the_generator_writes() {
    let committed = std::fs::read_to_string(FILE).expect("read the example data");
    let generated = generate::csv();
    // Compared line by line, so that a failure names the first difference.
    for (i, (c, g)) in committed.lines().zip(generated.lines()).enumerate() {
        assert_eq!(
            c,
            g,
            "line {} differs: run `cargo run --example make_example_data`",
            i + 1
        );
    }
    assert_eq!(committed, generated);
    assert!(committed.len() < 300_000, "{} bytes", committed.len());
}

#[test]
fn the_file_has_the_shape_the_quick_start_needs() {
    let rows = rows(&generate::csv());
    let customers: HashSet<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
    assert_eq!(customers.len(), generate::CUSTOMERS);
    assert!(rows.len() > 3_000, "{} rows", rows.len());
    let last = as_of();
    assert!(rows.iter().all(|r| r.occurred_at <= last));
    // Refunds, partial and full, of purchases listed before them.
    let purchases: HashMap<(&str, &str), &Row> = rows
        .iter()
        .filter(|r| r.kind == "purchase")
        .map(|r| ((r.customer_id.as_str(), r.transaction_id.as_str()), r))
        .collect();
    let (mut full, mut partial) = (0, 0);
    for r in rows.iter().filter(|r| r.kind == "refund") {
        let p = purchases[&(r.customer_id.as_str(), r.refunded_transaction_id.as_str())];
        assert!(p.occurred_at < r.occurred_at && r.cents <= p.cents, "{r:?}");
        if r.cents == p.cents {
            full += 1;
        } else {
            partial += 1;
        }
    }
    assert!(
        full >= 10 && partial >= 10,
        "{full} full, {partial} partial"
    );
    // Several orders on one day for some customers.
    let mut orders_a_day: HashMap<(&str, NaiveDate), u32> = HashMap::new();
    for r in rows.iter().filter(|r| r.kind == "purchase") {
        *orders_a_day
            .entry((r.customer_id.as_str(), r.occurred_at.date_naive()))
            .or_default() += 1;
    }
    let busy_days = orders_a_day.values().filter(|&&n| n > 1).count();
    assert!(busy_days >= 50, "{busy_days} days with several orders");
}

/// Customers with purchases on at least two days: the repeat customers.
fn repeat_customers(rows: &[Row]) -> usize {
    let mut days: HashMap<&str, HashSet<NaiveDate>> = HashMap::new();
    for r in rows.iter().filter(|r| r.kind == "purchase") {
        days.entry(&r.customer_id)
            .or_default()
            .insert(r.occurred_at.date_naive());
    }
    days.values().filter(|d| d.len() > 1).count()
}

#[tokio::test]
async fn it_imports_whole_fits_and_makes_a_decaying_cohort_table() {
    let app = spawn_app().await;
    let rows = rows(&std::fs::read_to_string(FILE).expect("read the example data"));

    // Every row passes the service's own checks: the whole file is recorded.
    let batches: Vec<pb::ImportTransactionsRequest> = rows
        .chunks(1_000)
        .map(|chunk| pb::ImportTransactionsRequest {
            transactions: chunk.iter().map(transaction).collect(),
        })
        .collect();
    let imported = app
        .ingest()
        .await
        .import_transactions(futures::stream::iter(batches))
        .await
        .expect("the example data imports")
        .into_inner();
    assert_eq!(
        (imported.recorded, imported.duplicates),
        (rows.len() as u64, 0)
    );
    assert_eq!(app.transactions_stored().await, rows.len() as i64);

    // A model as of 2026-10-31 that converged, on every customer.
    let model = ModelServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .fit_model(pb::FitModelRequest {
            as_of: Some(timestamp(as_of())),
            time_unit: pb::TimeUnit::Day as i32,
            ..Default::default()
        })
        .await
        .expect("the fit succeeds")
        .into_inner();
    assert_eq!(model.state, pb::ModelState::Succeeded as i32, "{model:?}");
    assert!(model.converged, "{model:?}");
    assert_eq!(model.customers, generate::CUSTOMERS as i64);
    let repeaters = repeat_customers(&rows);
    assert!(repeaters >= 300, "{repeaters} repeat customers");
    // Gamma-Gamma is fitted on repeat customers with a positive repeat value.
    assert!(
        model.spend_customers >= 300 && model.spend_customers <= repeaters as i64,
        "{} spend customers of {repeaters} repeat customers",
        model.spend_customers
    );

    // Monthly cohorts whose activity decays: the first nine months of 2025,
    // each with twelve whole months after its own before 2026-10-31 (the
    // period that ends at the as-of instant counts as partial).
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Month as i32,
            first_cohort: Some(timestamp(at(2025, 1, 1, 0, 0))),
            last_cohort: Some(timestamp(at(2025, 9, 1, 0, 0))),
            as_of: Some(timestamp(as_of())),
            periods: 13,
            include_forecast: false,
        })
        .await
        .expect("the cohort report")
        .into_inner();
    assert_eq!(report.cohorts.len(), 9);
    let mut active = [0u64; 13];
    for cohort in &report.cohorts {
        assert!(cohort.size >= 50, "{cohort:?}");
        assert_eq!(cohort.periods.len(), 13, "{cohort:?}");
        assert_eq!(cohort.periods[0].active_customers, cohort.size);
        for p in &cohort.periods {
            assert!(!p.partial, "{p:?}");
            active[p.k as usize] += p.active_customers;
        }
    }
    let early: u64 = active[1..=3].iter().sum();
    let late: u64 = active[10..=12].iter().sum();
    assert!(
        early * 2 > late * 3,
        "active customers by period {active:?}: no decay"
    );
}
