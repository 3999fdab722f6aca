//! The reports that read the active model: the segment report and the
//! cohort forecast, each against a computation written here from the raw
//! data and the fitted parameters.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use clv_model::{BgNbdParams, CustomerSummary, GammaGammaParams};
use clvd::api::pb;
use tonic::Code;

use crate::{
    helpers::*,
    models::{fit_as_of, fit_request, import, simulated_purchases},
    report_cohorts::{monthly, reports},
};

fn money(m: &Option<pb::Money>) -> f64 {
    let m = m.as_ref().expect("money");
    m.units as f64 + f64::from(m.nanos) / 1e9
}

#[tokio::test]
async fn segments_need_a_model_first() {
    let app = spawn_app().await;
    let e = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("FitModel"), "{}", e.message());
}

#[tokio::test]
async fn segments_and_tiers_group_the_active_models_scores() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let model = fit_as_of(&app, day).await;
    let report = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.model_version, model.version);

    // (customers, revenue nanos, Σ total value, Σ churn risk) per name,
    // from the stored scores with plain loops.
    let rows: Vec<(String, String, i64, f64, f64)> = sqlx::query_as(
        "SELECT segment, value_tier, historical_value_nanos::int8, predicted_value, churn_risk
           FROM customer_scores WHERE model_version = $1",
    )
    .bind(model.version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(rows.len() > 1_000);
    let total: i64 = rows.iter().map(|r| r.2).sum();
    let mut by_segment: HashMap<&str, (u64, i64, f64, f64)> = HashMap::new();
    let mut by_tier: HashMap<&str, (u64, i64, f64, f64)> = HashMap::new();
    for (segment, tier, revenue, predicted, risk) in &rows {
        for (map, key) in [(&mut by_segment, segment), (&mut by_tier, tier)] {
            let e = map.entry(key.as_str()).or_default();
            e.0 += 1;
            e.1 += revenue;
            e.2 += *revenue as f64 / 1e9 + predicted;
            e.3 += risk;
        }
    }
    for (got, want) in [
        (&report.segments, &by_segment),
        (&report.value_tiers, &by_tier),
    ] {
        assert_eq!(got.len(), want.len());
        for row in got {
            let (n, revenue, value, risk) = want[row.name.as_str()];
            assert_eq!(row.customers, n, "{}", row.name);
            assert!((row.share_of_revenue - revenue as f64 / total as f64).abs() < 1e-12);
            assert!((money(&row.average_value) - value / n as f64).abs() < 1e-6);
            assert!((row.average_churn_risk - risk / n as f64).abs() < 1e-12);
        }
    }
}

/// Issue 13: the Pareto curve of the segment report equals the stored
/// scores ranked and summed in the test: a point per percentile of
/// customers, each the top customers' share of the total value.
#[tokio::test]
async fn the_value_curve_is_the_top_customers_share_of_all_value() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let curve = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner()
        .value_curve;
    let rows: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT historical_value_nanos::int8, predicted_value FROM customer_scores
          WHERE model_version = $1",
    )
    .bind(model.version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut values: Vec<f64> = rows.iter().map(|(h, p)| *h as f64 / 1e9 + p).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let n = values.len() as u64;
    let total: f64 = values.iter().sum();
    assert!(n > 1_000 && total > 0.0);

    // 100 groups whose sizes differ by at most one, the larger first.
    assert_eq!(curve.len(), 100);
    let sizes: Vec<u64> = std::iter::once(curve[0].customers)
        .chain(curve.windows(2).map(|w| w[1].customers - w[0].customers))
        .collect();
    let (small, large) = (n / 100, n / 100 + 1);
    let larger = (n % 100) as usize;
    assert!(sizes[..larger].iter().all(|&s| s == large), "{sizes:?}");
    assert!(sizes[larger..].iter().all(|&s| s == small), "{sizes:?}");

    for p in &curve {
        let top: f64 = values[..p.customers as usize].iter().sum();
        assert_eq!(p.customer_share, p.customers as f64 / n as f64);
        assert!(
            (p.value_share - top / total).abs() < 1e-9,
            "top {} customers: {} vs {}",
            p.customers,
            p.value_share,
            top / total
        );
    }
    let last = curve.last().unwrap();
    assert_eq!(
        (last.customers, last.customer_share, last.value_share),
        (n, 1.0, 1.0)
    );
    // Ranked from the most valuable down: the curve is concave, each
    // percentile adding no more than the one before.
    for w in curve.windows(3) {
        let (a, b) = (
            w[1].value_share - w[0].value_share,
            w[2].value_share - w[1].value_share,
        );
        let (na, nb) = (
            (w[1].customers - w[0].customers) as f64,
            (w[2].customers - w[1].customers) as f64,
        );
        assert!(b / nb <= a / na + 1e-12);
    }
}

/// Issue 12: segment rows came in whatever order the database grouped
/// them. Segments follow their defined order (best first, as listed at
/// AtRiskCustomer.segment), value tiers run from the top down.
#[tokio::test]
async fn segment_rows_come_in_the_stated_order() {
    const SEGMENTS: [&str; 9] = [
        "champions",
        "loyal",
        "potential_loyalists",
        "new",
        "promising",
        "needs_attention",
        "at_risk",
        "hibernating",
        "lost",
    ];
    const TIERS: [&str; 3] = ["top_1_percent", "top_20_percent", "rest"];
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let report = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    let names = |rows: &[pb::SegmentRow]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let got = names(&report.segments);
    // Every segment present is listed once, in the defined order.
    let want: Vec<String> = SEGMENTS
        .iter()
        .filter(|s| got.iter().any(|g| g == *s))
        .map(|s| s.to_string())
        .collect();
    assert!(got.len() >= 4, "{got:?}");
    assert_eq!(got, want);
    assert_eq!(names(&report.value_tiers), TIERS);
}

#[tokio::test]
async fn forecast_periods_project_each_customers_expected_purchases_and_spend() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let as_of_day = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let model = fit_as_of(&app, as_of_day).await;
    let as_of = fit_request(as_of_day, pb::TimeUnit::Day).as_of;
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of,
            include_forecast: true,
            ..monthly(at(2024, 4, 1, 0, 0), 6)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.forecast_note, "");
    assert_eq!(report.model_version, model.version);

    let want = expected_forecast(
        &transactions,
        as_of_day,
        &model,
        at(2024, 4, 1, 0, 0).date_naive(),
        6,
    );
    let mut forecasts = 0;
    for c in &report.cohorts {
        let cohort = NaiveDate::parse_from_str(&c.period_label, "%Y-%m-%d").unwrap();
        assert!(c.size > 100, "{cohort} has {} customers", c.size);
        assert_eq!(
            c.periods.len(),
            6,
            "{cohort}: observed and forecast periods"
        );
        for p in &c.periods {
            let start = cohort + chrono::Months::new(p.k);
            assert_eq!(p.forecast, start > as_of_day, "{cohort} k={}", p.k);
            if !p.forecast {
                continue;
            }
            let (n, revenue) = want[&(cohort, p.k)];
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            assert!(
                rel(p.expected_purchases.unwrap(), n) < 1e-9,
                "{cohort} k={}",
                p.k
            );
            assert!(rel(money(&p.revenue), revenue) < 1e-9, "{cohort} k={}", p.k);
            assert!(revenue > 0.0);
            forecasts += 1;
        }
    }
    // April: 3 forecast periods, May 4, June 5.
    assert_eq!(forecasts, 3 + 4 + 5);
}

#[tokio::test]
async fn a_forecast_before_any_model_says_why_it_is_missing() {
    let app = spawn_app().await;
    app.ingest()
        .await
        .record_transaction(record(purchase("a", "p1", at(2026, 1, 5, 0, 0), 1_000)))
        .await
        .unwrap();
    let r = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: Some(timestamp(at(2026, 2, 10, 0, 0))),
            include_forecast: true,
            ..monthly(at(2026, 1, 1, 0, 0), 4)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.forecast_note.contains("FitModel"), "{}", r.forecast_note);
    assert_eq!(r.model_version, 0);
    assert!(r
        .cohorts
        .iter()
        .all(|c| c.periods.iter().all(|p| !p.forecast)));
    assert_eq!(r.cohorts[0].periods.len(), 2);
}

/// Issue 12: the first cohort's periods all end by as_of, later cohorts'
/// do not. The forecast was decided from the first cohort only and skipped
/// without a word; it must be given for the later cohorts.
#[tokio::test]
async fn a_forecast_is_given_when_only_later_cohorts_reach_past_as_of() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let as_of_day = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let model = fit_as_of(&app, as_of_day).await;
    let as_of = fit_request(as_of_day, pb::TimeUnit::Day).as_of;
    // Cohorts January..June, 3 months each: January's end in March.
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of,
            include_forecast: true,
            ..monthly(at(2024, 1, 1, 0, 0), 3)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.forecast_note, "");
    assert_eq!(report.model_version, model.version);
    let want = expected_forecast(
        &transactions,
        as_of_day,
        &model,
        at(2024, 1, 1, 0, 0).date_naive(),
        3,
    );
    let mut forecasts = Vec::new();
    for c in &report.cohorts {
        let cohort = NaiveDate::parse_from_str(&c.period_label, "%Y-%m-%d").unwrap();
        for p in c.periods.iter().filter(|p| p.forecast) {
            let (n, revenue) = want[&(cohort, p.k)];
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            assert!(rel(p.expected_purchases.unwrap(), n) < 1e-9);
            assert!(rel(money(&p.revenue), revenue) < 1e-9);
            forecasts.push((cohort.month(), p.k));
        }
    }
    // May's third month (July), June's second and third.
    assert_eq!(forecasts, [(5, 2), (6, 1), (6, 2)]);
    assert_eq!(want.len(), forecasts.len());
}

/// A forecast asked for where no period starts after as_of is not
/// possible: the answer says why instead of nothing.
#[tokio::test]
async fn a_forecast_with_no_period_after_as_of_says_why() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let as_of_day = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    fit_as_of(&app, as_of_day).await;
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: fit_request(as_of_day, pb::TimeUnit::Day).as_of,
            last_cohort: Some(timestamp(at(2024, 2, 1, 0, 0))),
            include_forecast: true,
            ..monthly(at(2024, 1, 1, 0, 0), 3)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.model_version, 0);
    assert!(
        report.forecast_note.contains("after as_of"),
        "{:?}",
        report.forecast_note
    );
    assert!(report
        .cohorts
        .iter()
        .all(|c| c.periods.iter().all(|p| !p.forecast)));
}

/// (cohort, k) -> (expected purchases, expected revenue) of the monthly
/// cohorts from `first_cohort` on, each period after `as_of_day` up to
/// `periods`, computed here from the raw purchases and the fitted
/// parameters.
fn expected_forecast(
    transactions: &[pb::Transaction],
    as_of_day: NaiveDate,
    model: &pb::Model,
    first_cohort: NaiveDate,
    periods: u32,
) -> HashMap<(NaiveDate, u32), (f64, f64)> {
    // Each customer's history to as_of, from the raw purchases (UTC days).
    let mut days: BTreeMap<&str, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for t in transactions {
        let ts = t.occurred_at.as_ref().unwrap();
        let day = chrono::DateTime::from_timestamp(ts.seconds, 0)
            .unwrap()
            .date_naive();
        if day <= as_of_day {
            let m = t.amount.as_ref().unwrap();
            *days
                .entry(&t.customer_id)
                .or_default()
                .entry(day)
                .or_default() += m.units * 1_000_000_000 + i64::from(m.nanos);
        }
    }
    let b = model.bgnbd.unwrap();
    let g = model.gamma_gamma.unwrap();
    let purchases = BgNbdParams::new(b.r, b.alpha, b.a, b.b).unwrap();
    let spend = GammaGammaParams::new(g.p, g.q, g.gamma).unwrap();
    let month_start = |d: NaiveDate| NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap();
    // (cohort, k) -> (expected purchases, expected revenue).
    let mut want: HashMap<(NaiveDate, u32), (f64, f64)> = HashMap::new();
    for d in days.values() {
        let (first, last) = (*d.keys().next().unwrap(), *d.keys().next_back().unwrap());
        let cohort = month_start(first);
        if cohort < first_cohort {
            continue;
        }
        let x = d.len() as f64 - 1.0;
        let repeat: i64 = d.values().skip(1).sum();
        let m = if x > 0.0 {
            repeat as f64 / 1e9 / x
        } else {
            0.0
        };
        let c = CustomerSummary::new(
            x,
            (last - first).num_days() as f64,
            (as_of_day - first).num_days() as f64,
            m,
        )
        .unwrap();
        let per_purchase = spend.expected_spend(&c).unwrap();
        for k in 0..periods {
            let start = cohort + chrono::Months::new(k);
            let end = cohort + chrono::Months::new(k + 1);
            if start <= as_of_day {
                continue;
            }
            let n = purchases.expected_purchases(&c, (end - as_of_day).num_days() as f64)
                - purchases.expected_purchases(&c, (start - as_of_day).num_days() as f64);
            let e = want.entry((cohort, k)).or_default();
            e.0 += n;
            e.1 += n * per_purchase;
        }
    }
    want
}
