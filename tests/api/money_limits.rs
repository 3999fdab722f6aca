//! Money at the documented limits: a transaction is at most 1,000,000,000
//! units whole (units and nanos together, `i64::MIN` included), and every
//! total (customer summary, per-day row, cohort cell, spend per period,
//! report) is exact far beyond the 64-bit range of nanos.

use chrono::NaiveDate;
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::Code;

use crate::{
    feedback::{record_spend, spend},
    helpers::*,
    models::{fit_as_of, import, simulated_purchases},
    report_cohorts::{monthly, reports},
};

/// The largest amount one transaction may carry, in whole units.
const CAP_UNITS: i64 = 1_000_000_000;
const NANOS_PER_UNIT: i128 = 1_000_000_000;

pub fn usd(units: i64, nanos: i32) -> pb::Money {
    pb::Money {
        currency_code: "USD".into(),
        units,
        nanos,
    }
}

/// Nanos of a Money, which must be present.
pub fn money_nanos(m: &Option<pb::Money>) -> i128 {
    let m = m.as_ref().expect("money present");
    i128::from(m.units) * NANOS_PER_UNIT + i128::from(m.nanos)
}

fn largest_purchase(
    customer: &str,
    id: &str,
    when: chrono::DateTime<chrono::Utc>,
) -> pb::Transaction {
    pb::Transaction {
        amount: Some(usd(CAP_UNITS, 0)),
        ..purchase(customer, id, when, 0)
    }
}

async fn scoring(app: &TestApp) -> ScoringServiceClient<tonic::transport::Channel> {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

/// A numeric column's sum as exact text (PostgreSQL's sum of a bigint or
/// numeric column is numeric).
async fn exact_sum(app: &TestApp, sql: &str) -> String {
    sqlx::query_scalar(sql)
        .fetch_one(&app.pool)
        .await
        .expect("sum query")
}

#[tokio::test]
async fn ten_purchases_of_the_largest_amount_give_the_exact_historical_value() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for day in 1..=10 {
        client
            .record_transaction(record(largest_purchase(
                "whale",
                &format!("p{day}"),
                at(2026, 1, day, 12, 0),
            )))
            .await
            .expect("each purchase is within the per-transaction cap");
    }
    let value = scoring(&app)
        .await
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "whale".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let want = 10 * i128::from(CAP_UNITS) * NANOS_PER_UNIT;
    assert_eq!(money_nanos(&value.historical_value), want);
    assert_eq!(money_nanos(&value.total_value), want);
    assert_eq!(
        money_nanos(&value.average_order_value),
        i128::from(CAP_UNITS) * NANOS_PER_UNIT
    );
    assert_eq!(
        exact_sum(&app, "SELECT sum(net_nanos)::text FROM customer_days").await,
        want.to_string()
    );
}

#[tokio::test]
async fn a_customer_past_64_bits_is_scored_and_segmented_exactly() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let mut client = app.ingest().await;
    // One occasion (x = 0), so the spend model's fit does not see it.
    for i in 0..10 {
        client
            .record_transaction(record(largest_purchase(
                "whale",
                &format!("p{i}"),
                at(2024, 6, 3, 10, i),
            )))
            .await
            .unwrap();
    }
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let want = 10 * i128::from(CAP_UNITS) * NANOS_PER_UNIT;
    let stored: String = sqlx::query_scalar(
        "SELECT historical_value_nanos::text FROM customer_scores
          WHERE customer_id = 'whale' AND model_version = $1",
    )
    .bind(model.version)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, want.to_string());
    let value = scoring(&app)
        .await
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "whale".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(money_nanos(&value.historical_value), want);
    assert!(value.prediction_available);
    let segments = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    let customers: u64 = segments.segments.iter().map(|s| s.customers).sum();
    assert_eq!(customers, model.customers as u64);
}

#[tokio::test]
async fn cohort_totals_past_64_bits_leave_every_cohort_report_answering_exactly() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    // Ten January customers: their cell totals 1e19 nanos, past i64.
    for c in 0..10 {
        client
            .record_transaction(record(largest_purchase(
                &format!("big{c}"),
                "p",
                at(2026, 1, 10, 12, c),
            )))
            .await
            .unwrap();
    }
    client
        .record_transaction(record(purchase("small", "p", at(2026, 3, 2, 9, 0), 1_250)))
        .await
        .unwrap();
    let mut reports = reports(&app).await;
    // An unrelated cohort answers.
    let march = reports
        .get_cohort_report(monthly(at(2026, 3, 1, 0, 0), 1))
        .await
        .expect("an unrelated cohort answers")
        .into_inner();
    assert_eq!(march.cohorts[0].size, 1);
    assert_eq!(
        money_nanos(&march.cohorts[0].periods[0].revenue),
        i128::from(nanos(1_250))
    );
    // And the big cohort answers, exactly.
    let january = reports
        .get_cohort_report(monthly(at(2026, 1, 1, 0, 0), 1))
        .await
        .expect("the big cohort answers")
        .into_inner();
    let cell = &january.cohorts[0].periods[0];
    assert_eq!(january.cohorts[0].size, 10);
    assert_eq!(
        money_nanos(&cell.revenue),
        10 * i128::from(CAP_UNITS) * NANOS_PER_UNIT
    );
    assert_eq!(
        money_nanos(&cell.revenue_per_customer),
        i128::from(CAP_UNITS) * NANOS_PER_UNIT
    );
    // The past-as_of path computes from the transactions: the same.
    let past = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: Some(timestamp(at(2026, 2, 1, 0, 0))),
            ..monthly(at(2026, 1, 1, 0, 0), 1)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        money_nanos(&past.cohorts[0].periods[0].revenue),
        10 * i128::from(CAP_UNITS) * NANOS_PER_UNIT
    );
}

#[tokio::test]
async fn twelve_spend_records_of_the_largest_amount_give_the_exact_period_total() {
    let app = spawn_app().await;
    for i in 0..12 {
        record_spend(
            &app,
            pb::AcquisitionSpend {
                amount: Some(usd(CAP_UNITS, 0)),
                ..spend(
                    &format!("s{i}"),
                    at(2026, 2, 1 + i, 0, 0),
                    at(2026, 2, 2 + i, 0, 0),
                    0,
                )
            },
        )
        .await;
    }
    let mut client = app.ingest().await;
    for c in ["a", "b", "c"] {
        client
            .record_transaction(record(purchase(c, "p", at(2026, 2, 20, 9, 0), 100)))
            .await
            .unwrap();
    }
    let want = 12 * i128::from(CAP_UNITS) * NANOS_PER_UNIT;
    let mut reports = reports(&app).await;
    let loyalty = reports
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(at(2026, 2, 1, 0, 0))),
            end_time: Some(timestamp(at(2026, 3, 1, 0, 0))),
        })
        .await
        .expect("the period's loyalty summary answers")
        .into_inner();
    assert_eq!(money_nanos(&loyalty.acquisition_spend), want);
    assert_eq!(money_nanos(&loyalty.cac), want / 3);
    let cohorts = reports
        .get_cohort_report(monthly(at(2026, 2, 1, 0, 0), 1))
        .await
        .expect("the period's cohort report answers")
        .into_inner();
    assert_eq!(money_nanos(&cohorts.cohorts[0].acquisition_spend), want);
    assert_eq!(money_nanos(&cohorts.cohorts[0].cac), want / 3);
}

/// A purchase of `amount`, optionally with `cost`, sent alone.
async fn try_purchase(
    app: &TestApp,
    amount: pb::Money,
    cost: Option<pb::Money>,
) -> Result<pb::RecordTransactionResponse, tonic::Status> {
    app.ingest()
        .await
        .record_transaction(record(pb::Transaction {
            amount: Some(amount),
            cost,
            ..purchase("c", "p", at(2026, 1, 5, 12, 0), 0)
        }))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_smallest_int64_is_rejected_as_amount_cost_and_spend_and_nothing_is_stored() {
    let app = spawn_app().await;
    let e = try_purchase(&app, usd(i64::MIN, 0), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violated_fields(&e), ["transaction.amount.units"]);
    let e = try_purchase(&app, usd(5, 0), Some(usd(i64::MIN, 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violated_fields(&e), ["transaction.cost.units"]);
    let e = try_purchase(&app, usd(i64::MIN + 1, 0), None)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["transaction.amount.units"]);
    let e = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(pb::AcquisitionSpend {
                amount: Some(usd(i64::MIN, 0)),
                ..spend("s", at(2026, 3, 1, 0, 0), at(2026, 3, 2, 0, 0), 0)
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violated_fields(&e), ["spend.amount.units"]);
    assert_eq!(app.row_counts().await, (0, 0, 0));
    assert_eq!(app.count("SELECT count(*) FROM acquisition_spend").await, 0);
}

#[tokio::test]
async fn the_cap_holds_for_units_and_nanos_together() {
    let app = spawn_app().await;
    for (amount, cost, field) in [
        (usd(CAP_UNITS, 1), None, "transaction.amount.units"),
        (
            usd(5, 0),
            Some(usd(CAP_UNITS, 999_999_999)),
            "transaction.cost.units",
        ),
    ] {
        let e = try_purchase(&app, amount, cost).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violated_fields(&e), [field]);
    }
    let e = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(pb::AcquisitionSpend {
                amount: Some(usd(CAP_UNITS, 1)),
                ..spend("s", at(2026, 3, 1, 0, 0), at(2026, 3, 2, 0, 0), 0)
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["spend.amount.units"]);
    assert_eq!(app.row_counts().await, (0, 0, 0));
    assert_eq!(app.count("SELECT count(*) FROM acquisition_spend").await, 0);
    // The cap itself is accepted, as amount and as cost.
    try_purchase(&app, usd(CAP_UNITS, 0), Some(usd(CAP_UNITS, 0)))
        .await
        .expect("exactly the cap is allowed");
    assert_eq!(
        exact_sum(&app, "SELECT sum(amount_nanos)::text FROM transactions").await,
        (i128::from(CAP_UNITS) * NANOS_PER_UNIT).to_string()
    );
}

/// The largest total Money can carry, in nanos.
fn max_total_nanos() -> i128 {
    i128::from(i64::MAX) * NANOS_PER_UNIT + 999_999_999
}

#[tokio::test]
async fn a_purchase_that_would_take_a_customer_past_the_largest_money_is_rejected_and_stores_nothing(
) {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(purchase("c", "p1", at(2026, 1, 5, 12, 0), 100)))
        .await
        .unwrap();
    // A customer at the limit: billions of transactions at the cap, which
    // no test can send, so the summary is set where the service keeps it.
    let near = max_total_nanos() - 1;
    sqlx::query(
        "UPDATE customers SET net_revenue_nanos = $1::text::numeric,
                              repeat_value_nanos = $1::text::numeric
          WHERE customer_id = 'c'",
    )
    .bind(near.to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    for (i, send) in ["single", "import"].into_iter().enumerate() {
        let t = purchase("c", &format!("p{}", i + 2), at(2026, 1, 6, 12, 0), 1);
        let e = if send == "single" {
            client.record_transaction(record(t)).await.unwrap_err()
        } else {
            client
                .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                    transactions: vec![t],
                }]))
                .await
                .unwrap_err()
        };
        assert_eq!(e.code(), Code::InvalidArgument, "{send}: {e:?}");
        let fields = violated_fields(&e);
        assert_eq!(fields.len(), 1, "{send}: {e:?}");
        assert!(fields[0].ends_with("amount"), "{send}: {fields:?}");
        assert!(e.message().contains("past its limit"), "{send}: {e:?}");
    }
    assert_eq!(app.transactions_stored().await, 1);
    assert_eq!(
        exact_sum(&app, "SELECT net_revenue_nanos::text FROM customers").await,
        near.to_string()
    );
    assert_eq!(
        app.count("SELECT count(*) FROM customer_days").await,
        1,
        "no day row for the rejected purchase"
    );
}

#[tokio::test]
async fn a_cohort_whose_figure_passes_the_largest_money_is_out_of_range_alone() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for (c, when) in [
        ("jan", at(2026, 1, 10, 9, 0)),
        ("mar", at(2026, 3, 2, 9, 0)),
    ] {
        client
            .record_transaction(record(purchase(c, "p", when, 500)))
            .await
            .unwrap();
    }
    let mut reports = reports(&app).await;
    reports
        .get_cohort_report(monthly(at(2026, 1, 1, 0, 0), 3))
        .await
        .expect("aggregates brought up to date");
    // January's cell as billions of transactions at the cap would leave
    // it: past what Money carries.
    sqlx::query(
        "UPDATE cohort_cells SET net_nanos = $1::text::numeric
          WHERE granularity = 2 AND cohort = '2026-01-01' AND period = '2026-01-01'",
    )
    .bind((max_total_nanos() + 1).to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    let e = reports
        .get_cohort_report(monthly(at(2026, 1, 1, 0, 0), 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("Money"), "{e:?}");
    let march = reports
        .get_cohort_report(monthly(at(2026, 3, 1, 0, 0), 1))
        .await
        .expect("an unrelated cohort answers")
        .into_inner();
    assert_eq!(
        money_nanos(&march.cohorts[0].periods[0].revenue),
        i128::from(nanos(500))
    );
    // Aggregation goes on: a new March purchase shows up.
    client
        .record_transaction(record(purchase("mar", "p2", at(2026, 3, 3, 9, 0), 250)))
        .await
        .unwrap();
    let march = reports
        .get_cohort_report(monthly(at(2026, 3, 1, 0, 0), 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        money_nanos(&march.cohorts[0].periods[0].revenue),
        i128::from(nanos(750))
    );
}
