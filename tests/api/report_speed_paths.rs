//! The report page's fast paths answer what the plain computations do:
//! GetLoyaltySummary (customer summaries plus the days of its period)
//! against plain SQL over the raw transactions, after backdated purchases,
//! refunds, purchases after the period and erasures; EvaluateModel, kept
//! per model version, against its fresh computation, and a new fit giving a
//! new one; GetSegmentReport's kept aggregates of a version's scores
//! against a plain computation over the scores.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clvd::api::pb;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{
    helpers::*,
    models::{fit_request, import, models, simulated_purchases},
    report_cohorts::reports,
};

const ZONE: &str = "America/New_York";

/// Nanos of a Money that must be present.
fn nanos_of(m: &Option<pb::Money>) -> i128 {
    let m = m.as_ref().expect("money present");
    i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos)
}

/// 400 customers over 2025-01 .. 2026-06 (some two purchases on a day), a
/// tenth of the purchases partly refunded up to 60 days later.
fn generated() -> (Vec<pb::Transaction>, Vec<pb::Transaction>) {
    let mut rng = StdRng::seed_from_u64(13);
    let start = at(2025, 1, 1, 0, 0);
    let span = (at(2026, 6, 30, 23, 0) - start).num_seconds();
    let (mut purchases, mut refunds) = (Vec::new(), Vec::new());
    for customer in 0..400 {
        let first = start + Duration::seconds(rng.random_range(0..span));
        for n in 0..rng.random_range(1..=12) {
            let when = if n == 0 {
                first
            } else if rng.random_bool(0.1) {
                first + Duration::minutes(rng.random_range(0..600))
            } else {
                start + Duration::seconds(rng.random_range(0..span))
            }
            .max(first);
            let cents = rng.random_range(0..20_000);
            let (c, id) = (format!("c{customer}"), format!("p{n}"));
            if cents > 0 && rng.random_bool(0.1) {
                let later = when + Duration::seconds(rng.random_range(1..60 * 86_400));
                let part = rng.random_range(1..=cents);
                refunds.push(refund(&c, &format!("r{n}"), &id, later, part));
            }
            purchases.push(purchase(&c, &id, when, cents));
        }
    }
    (purchases, refunds)
}

/// The loyalty counts over business days [start, end) computed with plain
/// SQL from the raw transactions (a refund counts on its purchase's day):
/// customers, new, active, existing, retained, repeat, historical revenue,
/// period revenue, the top fifth's period revenue.
async fn plain_loyalty(app: &TestApp, start: NaiveDate, end: NaiveDate) -> [i128; 9] {
    let row: (i64, i64, i64, i64, i64, i64, String, String, String) = sqlx::query_as(
        "WITH refunded AS (
             SELECT customer_id, refunded_transaction_id AS transaction_id, sum(amount_nanos) AS r
               FROM transactions WHERE kind = 2 GROUP BY 1, 2
         ), days AS (
             SELECT p.customer_id, p.occasion_day AS day,
                    sum(p.amount_nanos - coalesce(f.r, 0)) AS net
               FROM transactions p LEFT JOIN refunded f USING (customer_id, transaction_id)
              WHERE p.kind = 1 GROUP BY 1, 2
         ), per_customer AS (
             SELECT customer_id, min(day) AS first_day, count(*) AS occasions, sum(net) AS net,
                    sum(net) FILTER (WHERE day >= $1) AS period_net
               FROM days WHERE day < $2 GROUP BY customer_id
         ), top AS (
             SELECT period_net FROM per_customer WHERE period_net IS NOT NULL
              ORDER BY period_net DESC
              LIMIT (SELECT ceil(count(*) * 0.2)::int8 FROM per_customer WHERE period_net IS NOT NULL)
         )
         SELECT count(*),
                count(*) FILTER (WHERE first_day >= $1),
                count(period_net),
                count(*) FILTER (WHERE first_day < $1),
                count(period_net) FILTER (WHERE first_day < $1),
                count(*) FILTER (WHERE occasions >= 2),
                coalesce(sum(net), 0)::text,
                coalesce(sum(period_net), 0)::text,
                (SELECT coalesce(sum(period_net), 0)::text FROM top)
           FROM per_customer",
    )
    .bind(start)
    .bind(end)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let int = |s: &str| s.parse::<i128>().unwrap();
    [
        i128::from(row.0),
        i128::from(row.1),
        i128::from(row.2),
        i128::from(row.3),
        i128::from(row.4),
        i128::from(row.5),
        int(&row.6),
        int(&row.7),
        int(&row.8),
    ]
}

/// GetLoyaltySummary over business days [start, end) of New York, asked
/// with instants at noon UTC (morning in New York).
async fn loyalty(app: &TestApp, start: NaiveDate, end: NaiveDate) -> pb::LoyaltySummary {
    let noon = |d: NaiveDate| -> DateTime<Utc> { d.and_hms_opt(12, 0, 0).unwrap().and_utc() };
    reports(app)
        .await
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(noon(start))),
            end_time: Some(timestamp(noon(end))),
        })
        .await
        .unwrap()
        .into_inner()
}

fn ratio(a: i128, b: i128) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

#[tokio::test]
async fn the_loyalty_summary_equals_plain_sql_over_the_raw_transactions() {
    let app = spawn_app_with(|s| s.time_zone = ZONE.parse().unwrap()).await;
    let (purchases, refunds) = generated();
    import(&app, &purchases).await;
    import(&app, &refunds).await;
    let mut client = app.ingest().await;
    let mut rng = StdRng::seed_from_u64(14);
    // Backdated first purchases (moving customers to earlier days and
    // periods), purchases after every period below, and erasures.
    for customer in (0..400).step_by(7) {
        let when = at(2024, 12, 1, 0, 0) + Duration::days(rng.random_range(0..300));
        let t = purchase(&format!("c{customer}"), "backdated", when, 1_234);
        client.record_transaction(record(t)).await.unwrap();
    }
    for customer in (3..400).step_by(5) {
        let when = at(2026, 7, 1, 0, 0) + Duration::days(rng.random_range(0..60));
        let t = purchase(&format!("c{customer}"), "late", when, 4_321);
        client.record_transaction(record(t)).await.unwrap();
    }
    for customer in (1..400).step_by(19) {
        client
            .delete_customer(pb::DeleteCustomerRequest {
                customer_id: format!("c{customer}"),
            })
            .await
            .unwrap();
    }
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let periods = [
        (day(2025, 10, 1), day(2026, 1, 1)),
        // Ends before the late purchases and some refunds' own days.
        (day(2026, 3, 15), day(2026, 6, 13)),
        (day(2025, 1, 15), day(2025, 4, 1)),
        // Reaches past every purchase.
        (day(2026, 6, 1), day(2026, 9, 1)),
    ];
    let mut late_customers_seen = 0;
    for (start, end) in periods {
        let [customers, new, active, existing, retained, repeat, historical, revenue, top] =
            plain_loyalty(&app, start, end).await;
        let s = loyalty(&app, start, end).await;
        let what = format!("[{start}, {end})");
        assert_eq!(
            (
                i128::from(s.customers),
                i128::from(s.new_customers),
                i128::from(s.active_customers)
            ),
            (customers, new, active),
            "{what}"
        );
        assert_eq!(s.retention_rate, ratio(retained, existing), "{what}");
        assert_eq!(
            s.churn_rate,
            ratio(retained, existing).map(|r| 1.0 - r),
            "{what}"
        );
        assert_eq!(s.repeat_purchase_rate, ratio(repeat, customers), "{what}");
        assert_eq!(nanos_of(&s.revenue), revenue, "{what}");
        assert_eq!(
            s.top_20_percent_revenue_share,
            ratio(top, revenue),
            "{what}"
        );
        // The mean, rounded to the nano.
        let mean = nanos_of(&s.average_historical_clv);
        assert!(
            (mean * customers - historical).abs() <= customers,
            "{what}: mean {mean} of {historical} over {customers}"
        );
        assert!(customers > 50 && active > 20, "{what}: too few to compare");
        late_customers_seen += app
            .count(&format!(
                "SELECT count(DISTINCT customer_id) FROM customer_days
                  WHERE day >= '{end}' AND customer_id IN
                        (SELECT customer_id FROM customer_days WHERE day < '{end}')"
            ))
            .await;
    }
    assert!(late_customers_seen > 100, "periods with later occasions");
}

/// A BG/NBD fit (the quickest) over everything up to 2025-06-30.
async fn fit(app: &TestApp) -> pb::Model {
    let day = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    models(app)
        .await
        .fit_model(pb::FitModelRequest {
            families: vec![pb::ModelFamily::BgNbd as i32],
            ..fit_request(day, pb::TimeUnit::Day)
        })
        .await
        .expect("fit")
        .into_inner()
}

fn evaluate_request() -> pb::EvaluateModelRequest {
    pb::EvaluateModelRequest {
        calibration_end: Some(timestamp(at(2024, 9, 30, 23, 0))),
        holdout_end: Some(timestamp(at(2024, 12, 31, 23, 0))),
        time_unit: pb::TimeUnit::Day as i32,
        families: vec![pb::ModelFamily::MbgNbd as i32],
    }
}

async fn evaluate(app: &TestApp) -> pb::ModelEvaluation {
    models(app)
        .await
        .evaluate_model(evaluate_request())
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn an_evaluation_is_kept_per_model_version_and_equals_its_fresh_computation() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let first = fit(&app).await;

    let computed = evaluate(&app).await;
    let kept_rows = "SELECT count(*) FROM model_evaluations";
    assert_eq!(app.count(kept_rows).await, 1);
    assert_eq!(evaluate(&app).await, computed, "the kept answer");
    // Purchases recorded since do not change the answer while the version
    // is active...
    let mut client = app.ingest().await;
    for i in 0..200 {
        let when = at(2024, 8, 1, 0, 0) + Duration::hours(i);
        let t = purchase(&format!("sim-{}", i % 40), &format!("x{i}"), when, 999);
        client.record_transaction(record(t)).await.unwrap();
    }
    assert_eq!(evaluate(&app).await, computed, "kept for the version");
    // ... a new fit gives a new evaluation, of the data as it is now.
    let second = fit(&app).await;
    assert!(second.version > first.version);
    let recomputed = evaluate(&app).await;
    assert_ne!(recomputed, computed, "the new version's evaluation");
    assert_ne!(
        recomputed.by_calibration_repeat_occasions,
        computed.by_calibration_repeat_occasions
    );
    assert_eq!(app.count(kept_rows).await, 2);
    // The kept answer is what computing it again gives.
    assert_eq!(evaluate(&app).await, recomputed);
    sqlx::query("DELETE FROM model_evaluations")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(evaluate(&app).await, recomputed, "computed afresh");
    // Another request is another answer.
    let other = models(&app)
        .await
        .evaluate_model(pb::EvaluateModelRequest {
            families: Vec::new(),
            ..evaluate_request()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.families.is_empty() && !recomputed.families.is_empty());
    assert_eq!(app.count(kept_rows).await, 2);
}

#[tokio::test]
async fn concurrent_first_evaluations_agree_and_keep_one_answer() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    fit(&app).await;
    let (a, b, c) = tokio::join!(evaluate(&app), evaluate(&app), evaluate(&app));
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(app.count("SELECT count(*) FROM model_evaluations").await, 1);
    assert_eq!(evaluate(&app).await, a);
}

/// Per segment or value tier (by dimension and name): customers, historical
/// revenue nanos, mean value, mean churn risk, from the version's scores
/// read row by row.
fn plain_segments(
    scores: &[(String, String, String, f64, f64)],
) -> BTreeMap<(String, String), (u64, i128, f64, f64)> {
    let mut sums: BTreeMap<(String, String), (u64, i128, f64, f64)> = BTreeMap::new();
    for (segment, tier, historical, predicted, churn) in scores {
        let nanos: i128 = historical.parse().unwrap();
        let value = nanos as f64 / 1e9 + predicted;
        for key in [
            ("segment".to_owned(), segment.clone()),
            ("value_tier".to_owned(), tier.clone()),
        ] {
            let e = sums.entry(key).or_default();
            e.0 += 1;
            e.1 += nanos;
            e.2 += value;
            e.3 += churn;
        }
    }
    sums.into_iter()
        .map(|(k, (n, r, v, c))| (k, (n, r, v / n as f64, c / n as f64)))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn the_kept_segment_report_equals_a_plain_computation_over_the_scores() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let model = fit(&app).await;

    let mut client = reports(&app).await;
    let first = client
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        app.count("SELECT count(*) FROM score_summaries").await,
        1,
        "kept"
    );
    let kept = client
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, first);

    let scores: Vec<(String, String, String, f64, f64)> = sqlx::query_as(
        "SELECT segment, value_tier, historical_value_nanos::text, predicted_value, churn_risk
           FROM customer_scores WHERE model_version = $1",
    )
    .bind(model.version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(scores.len() > 1_000);
    let want = plain_segments(&scores);
    let total: i128 = want
        .iter()
        .filter(|((d, _), _)| d == "segment")
        .map(|(_, v)| v.1)
        .sum();
    let mut seen = 0;
    for (dimension, rows) in [
        ("segment", &kept.segments),
        ("value_tier", &kept.value_tiers),
    ] {
        for row in rows {
            let (n, revenue, value, churn) = want[&(dimension.to_owned(), row.name.clone())];
            assert_eq!(row.customers, n, "{dimension} {}", row.name);
            assert!(close(row.share_of_revenue, revenue as f64 / total as f64));
            let mean = nanos_of(&row.average_value) as f64 / 1e9;
            assert!((mean - value).abs() <= 1e-6, "{} {mean} {value}", row.name);
            assert!(close(row.average_churn_risk, churn), "{}", row.name);
            seen += 1;
        }
    }
    assert_eq!(seen, want.len(), "every segment and tier reported");

    // The Pareto curve: customers ranked by total value (ties by id) in 100
    // equal groups, cumulative shares.
    let mut values: Vec<(f64, String)> = sqlx::query_as(
        "SELECT historical_value_nanos / 1e9 + predicted_value, customer_id
           FROM customer_scores WHERE model_version = $1",
    )
    .bind(model.version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    values.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let n = values.len();
    let all: f64 = values.iter().map(|v| v.0).sum();
    let (base, extra) = (n / 100, n % 100);
    let (mut at, mut cumulative) = (0, 0.0);
    assert_eq!(kept.value_curve.len(), 100);
    for (i, point) in kept.value_curve.iter().enumerate() {
        let size = base + usize::from(i < extra);
        cumulative += values[at..at + size].iter().map(|v| v.0).sum::<f64>();
        at += size;
        assert_eq!(point.customers as usize, at, "point {i}");
        assert!(close(point.value_share, cumulative / all), "point {i}");
    }
    assert!(close(kept.value_curve[99].value_share, 1.0));

    // The loyalty summary's mean predicted value reads the same aggregates.
    let mean: f64 = scores.iter().map(|s| s.3).sum::<f64>() / scores.len() as f64;
    let s = loyalty(
        &app,
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
    )
    .await;
    assert_eq!(s.model_version, model.version);
    let historical = nanos_of(&s.average_historical_clv) as f64;
    let clv = nanos_of(&s.average_predicted_clv) as f64;
    assert!((clv - mean * 1e9).abs() <= 1.0, "{clv} {mean}");
    assert!(historical > 0.0);
}

/// The score aggregates read the version's own partition, not
/// `customer_scores`: with the parent locked exclusively (as a fit
/// dropping an older version's partition locks it), they are still
/// computed; and, the other way round, a fit's drop does not wait for a
/// version's aggregates being computed after the previous fit.
#[tokio::test]
async fn score_aggregates_do_not_lock_the_scores_parent() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let model = fit(&app).await;
    // The fit keeps the aggregates in the background: wait for them, then
    // forget them, so that the call below computes them again.
    for _ in 0..100 {
        if app.count("SELECT count(*) FROM score_summaries").await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for table in [
        "score_value_percentiles",
        "score_segments",
        "score_summaries",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE ONLY customer_scores IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let computed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.storage.score_aggregates(model.version),
    )
    .await
    .expect("computed while customer_scores is locked")
    .expect("the aggregates");
    holder.rollback().await.unwrap();
    let scored = app
        .count(&format!(
            "SELECT count(*) FROM customer_scores WHERE model_version = {}",
            model.version
        ))
        .await;
    assert!(scored > 0);
    assert_eq!(computed.customers, scored as u64);
    assert_eq!(computed.value_percentiles.len(), 100.min(scored as usize));
}
