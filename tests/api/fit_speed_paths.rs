//! FitModel's fast paths against the slow, obvious computation on
//! generated data: the one-pass grouped read equals the groups computed
//! here from the raw transactions (after refunds, backdated purchases and
//! erasures, sent in random order over concurrent streams); every stored
//! score equals the model core's on summaries computed here; the at-risk
//! listing comes in the order those scores give; a fit that fails after
//! writing its scores leaves the previous version active and readable; old
//! versions' scores are dropped whole; each stage of a fit shows in the
//! metrics.

use std::{collections::BTreeMap, time::Duration};

use chrono::{Datelike, NaiveDate, Utc};
use clv_model::{BgNbdParams, ClvModel, CustomerSummary, GammaGammaParams, ScoreOptions};
use clvd::{
    api::pb::{self, scoring_service_client::ScoringServiceClient},
    storage::{FitData, PurchaseGroup, SpendGroup},
};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use crate::{
    helpers::*,
    models::{fit_as_of, import, models, simulated_purchases},
    oracle::{expected, money_nanos},
};

/// The simulated purchases (1,500 customers over 2024), and then: a
/// refund of about one purchase in 15 (half of it or all of it), a
/// backdated purchase (before their first one) for one customer in 10, and
/// the customers to erase (one in 25). Seeded.
fn history() -> (Vec<pb::Transaction>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(15);
    let mut out = simulated_purchases();
    let mut extra = Vec::new();
    for (i, p) in out.iter().enumerate() {
        if rng.random_ratio(1, 15) {
            let cents = money_nanos(&p.amount) as i64 / 10_000_000;
            let refunded = if rng.random_bool(0.5) {
                cents
            } else {
                cents / 2
            };
            let when = p.occurred_at.as_ref().map(|t| t.seconds).unwrap_or(0) + 86_400 * 3;
            extra.push(refund(
                &p.customer_id,
                &format!("r-{i}"),
                &p.transaction_id,
                chrono::DateTime::from_timestamp(when, 0).unwrap(),
                refunded.max(1),
            ));
        }
    }
    for c in (0..1_500).step_by(10) {
        extra.push(purchase(
            &format!("sim-{c}"),
            "backdated",
            at(2023, 12, 1 + (c % 28) as u32, 9, 0),
            1_000 + c as i64,
        ));
    }
    out.extend(extra);
    let erased = (0..1_500).step_by(25).map(|c| format!("sim-{c}")).collect();
    (out, erased)
}

/// Sends `transactions` in random order over two concurrent import streams
/// (refunds after the purchases they refund, which ingest requires), then
/// erases `erased`.
async fn send(app: &TestApp, transactions: &[pb::Transaction], erased: &[String]) {
    let mut rng = StdRng::seed_from_u64(1_515);
    let is_refund = |t: &pb::Transaction| t.kind == pb::TransactionKind::Refund as i32;
    let mut purchases: Vec<_> = transactions
        .iter()
        .filter(|t| !is_refund(t))
        .cloned()
        .collect();
    let mut refunds: Vec<_> = transactions
        .iter()
        .filter(|t| is_refund(t))
        .cloned()
        .collect();
    purchases.shuffle(&mut rng);
    refunds.shuffle(&mut rng);
    for wave in [purchases, refunds] {
        let (a, b) = wave.split_at(wave.len() / 2);
        tokio::join!(import(app, a), import(app, b));
    }
    let mut ingest = app.ingest().await;
    for c in erased {
        ingest
            .delete_customer(pb::DeleteCustomerRequest {
                customer_id: c.clone(),
            })
            .await
            .expect("erase");
    }
}

/// What is left after the erasures.
fn kept(transactions: &[pb::Transaction], erased: &[String]) -> Vec<pb::Transaction> {
    transactions
        .iter()
        .filter(|t| !erased.contains(&t.customer_id))
        .cloned()
        .collect()
}

/// The groups a fit as of the end of `day` should read, computed here from
/// the raw transactions: each customer's purchases up to `day` (UTC days),
/// each less whatever refunds it, whenever they were recorded.
fn groups_from_raw(transactions: &[pb::Transaction], day: NaiveDate) -> FitData {
    let upto: Vec<pb::Transaction> = transactions
        .iter()
        .filter(|t| {
            t.kind == pb::TransactionKind::Refund as i32
                || chrono::DateTime::from_timestamp(t.occurred_at.as_ref().unwrap().seconds, 0)
                    .unwrap()
                    .date_naive()
                    <= day
        })
        .cloned()
        .collect();
    let mut purchases: BTreeMap<(i32, i64, i64), u64> = BTreeMap::new();
    let mut spend: BTreeMap<(i32, u64), u64> = BTreeMap::new();
    for e in expected(&upto).values() {
        let x = e.purchase_occasions - 1;
        let t_x = (e.last_purchase_day - e.first_purchase_day).num_days();
        let t = (day - e.first_purchase_day).num_days();
        *purchases.entry((x, t_x, t)).or_default() += 1;
        if x > 0 && e.repeat_value_nanos > 0 {
            let m = e.repeat_value_nanos as f64 / 1e9 / f64::from(x);
            *spend.entry((x, m.to_bits())).or_default() += 1;
        }
    }
    FitData {
        purchase_groups: purchases
            .into_iter()
            .map(|((x, t_x, t), customers)| PurchaseGroup {
                x: f64::from(x),
                t_x: t_x as f64,
                t: t as f64,
                customers,
            })
            .collect(),
        spend_groups: spend
            .into_iter()
            .map(|((x, m), customers)| SpendGroup {
                x: f64::from(x),
                m: f64::from_bits(m),
                customers,
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_one_pass_fit_read_equals_the_groups_of_the_raw_transactions() {
    let app = spawn_app().await;
    let (transactions, erased) = history();
    send(&app, &transactions, &erased).await;
    let left = kept(&transactions, &erased);
    // Mid-history (customers with purchases on both sides of the day are
    // summed from their days), the last day, and after it.
    for day in [
        NaiveDate::from_ymd_opt(2023, 12, 15).unwrap(),
        NaiveDate::from_ymd_opt(2024, 3, 31).unwrap(),
        NaiveDate::from_ymd_opt(2024, 9, 30).unwrap(),
        NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
        NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
    ] {
        let fast = app.storage.fit_data(day).await.expect("one-pass read");
        let summaries = app.storage.scoring_summaries().await.expect("summaries");
        let grouped = app
            .storage
            .fit_data_from_summaries(day, &summaries)
            .await
            .expect("grouped from the summaries");
        let plain = app
            .storage
            .fit_data_from_days(day)
            .await
            .expect("plain read");
        let want = groups_from_raw(&left, day);
        // (Before 2024 only the backdated purchases, one per customer.)
        assert!(
            !want.purchase_groups.is_empty()
                && (day.year() < 2024 || !want.spend_groups.is_empty()),
            "{day}: the data has groups"
        );
        assert_eq!(
            fast.purchase_groups, want.purchase_groups,
            "{day}: purchase groups"
        );
        assert_eq!(fast.spend_groups, want.spend_groups, "{day}: spend groups");
        assert_eq!(fast, plain, "{day}: the one-pass read and the plain one");
        assert_eq!(
            grouped, plain,
            "{day}: the summaries grouped in memory and the plain read"
        );
    }
}

/// The stored scores of `version`, by customer: (P(alive), P(no purchase),
/// expected purchases, predicted value, churn risk, value at risk).
async fn stored_scores(app: &TestApp, version: i64) -> BTreeMap<String, [f64; 6]> {
    let rows: Vec<(String, f64, f64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT customer_id, probability_alive, probability_no_purchase, expected_purchases,
                predicted_value, churn_risk, value_at_risk
           FROM customer_scores WHERE model_version = $1",
    )
    .bind(version)
    .fetch_all(&app.pool)
    .await
    .expect("scores");
    rows.into_iter()
        .map(|r| (r.0, [r.1, r.2, r.3, r.4, r.5, r.6]))
        .collect()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

#[tokio::test]
async fn stored_scores_equal_the_model_core_and_the_at_risk_list_follows_them() {
    // No floor on P(alive), so that min_churn_risk 0 lists everyone.
    let app = spawn_app_with(|s| s.at_risk_min_probability_alive = 0.0).await;
    let (transactions, erased) = history();
    send(&app, &transactions, &erased).await;
    let left = kept(&transactions, &erased);
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    // The scores are as of the day of the fit (UTC, the default zone).
    let today = Utc::now().date_naive();
    let (p, s) = (model.bgnbd.unwrap(), model.gamma_gamma.unwrap());
    let core = ClvModel {
        purchases: BgNbdParams::new(p.r, p.alpha, p.a, p.b).unwrap().into(),
        spend: GammaGammaParams::new(s.p, s.q, s.gamma).unwrap(),
    };

    let stored = stored_scores(&app, model.version).await;
    let summaries = expected(&left);
    assert_eq!(stored.len(), summaries.len(), "every customer scored once");
    let mut want = BTreeMap::new();
    for (customer, e) in &summaries {
        let x = f64::from(e.purchase_occasions - 1);
        let t_x = (e.last_purchase_day - e.first_purchase_day).num_days() as f64;
        let t = ((today - e.first_purchase_day).num_days() as f64).max(t_x);
        let m = if x > 0.0 {
            e.repeat_value_nanos as f64 / 1e9 / x
        } else {
            0.0
        };
        let c = core
            .score(
                &CustomerSummary::new(x, t_x, t, m).unwrap(),
                &ScoreOptions::default(),
            )
            .unwrap();
        let churn = 1.0 - c.probability_alive;
        // Value at risk: churn risk × predicted value (docs/definitions.md).
        let at_risk = churn * c.predicted_value;
        let w = [
            c.probability_alive,
            c.probability_no_purchase,
            c.expected_purchases,
            c.predicted_value,
            churn,
            at_risk,
        ];
        let got = stored.get(customer).expect("a stored score");
        for (k, (g, w)) in got.iter().zip(w).enumerate() {
            assert!(close(*g, w), "{customer} field {k}: stored {g}, core {w}");
        }
        want.insert(customer.clone(), w);
    }

    // The whole listing, 211 to a page: every customer once, by value at
    // risk as computed here (highest first; equal values in either order).
    let mut client = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap());
    let (mut listed, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size: 211,
                page_token: token,
                min_churn_risk: Some(0.0),
                min_predicted_value: None,
            })
            .await
            .expect("a page")
            .into_inner();
        assert_eq!(page.model_version, model.version);
        listed.extend(page.customers.into_iter().map(|c| c.customer_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), want.len());
    for pair in listed.windows(2) {
        let (a, b) = (want[&pair[0]][5], want[&pair[1]][5]);
        assert!(
            a >= b || close(a, b),
            "{} ({a}) listed before {} ({b})",
            pair[0],
            pair[1]
        );
    }
}

/// A new version's scores are planned from their own statistics from the
/// first read on: without them, ListAtRiskCustomers' first page read the
/// whole version (a bitmap scan and a sort) until autovacuum analyzed it.
#[tokio::test]
async fn a_versions_scores_have_planner_statistics_when_it_is_activated() {
    let app = spawn_app().await;
    let (transactions, erased) = history();
    send(&app, &transactions, &erased).await;
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let table = format!("customer_scores_v{}", model.version);
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT attname::text FROM pg_stats WHERE tablename = $1 ORDER BY 1")
            .bind(&table)
            .fetch_all(&app.pool)
            .await
            .expect("pg_stats");
    for column in ["churn_risk", "probability_alive", "value_at_risk"] {
        assert!(
            columns.iter().any(|c| c == column),
            "no statistics on {table}.{column} after the fit (have {columns:?})"
        );
    }
    let first = first_page(&app).await;
    assert_eq!(first.model_version, model.version);
    assert!(!first.customers.is_empty());
}

/// The partitions of customer_scores, by name.
async fn partitions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'customer_scores'::regclass ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("partitions")
}

async fn active_version(app: &TestApp) -> i64 {
    models(app)
        .await
        .get_model(pb::GetModelRequest::default())
        .await
        .expect("an active model")
        .into_inner()
        .version
}

async fn first_page(app: &TestApp) -> pb::ListAtRiskCustomersResponse {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
            page_size: 50,
            min_churn_risk: Some(0.0),
            ..Default::default()
        })
        .await
        .expect("a page")
        .into_inner()
}

#[tokio::test]
async fn a_fit_that_fails_after_writing_its_scores_leaves_the_previous_version_active() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let first = fit_as_of(&app, day).await;
    let before = first_page(&app).await;
    assert_eq!(before.model_version, first.version);

    // A session holds a lock that attaching a version's scores must wait
    // for; once the fit waits there (its scores copied and indexed), its
    // statement is cancelled, as an operator's pg_cancel_backend would.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE customer_scores IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut client = models(&app).await;
    let fit = tokio::spawn(async move {
        client
            .fit_model(crate::models::fit_request(day, pb::TimeUnit::Day))
            .await
    });
    let mut waiting = None;
    for _ in 0..600 {
        waiting = sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query LIKE '%ATTACH PARTITION%'",
        )
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        if waiting.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = waiting.expect("the fit reached the attach step");
    sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(&app.pool)
        .await
        .unwrap();
    blocker.rollback().await.unwrap();
    let failed = fit.await.unwrap();
    assert!(failed.is_err(), "the fit failed: {failed:?}");

    // The previous version is active, its scores listed as before; the
    // failed version left no table and no rows.
    assert_eq!(active_version(&app).await, first.version);
    let after = first_page(&app).await;
    assert_eq!(after.model_version, first.version);
    assert_eq!(after.customers, before.customers);
    assert_eq!(
        partitions(&app).await,
        vec![format!("customer_scores_v{}", first.version)]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM customer_scores WHERE model_version <> {}",
            first.version
        ))
        .await,
        0
    );

    // The next fits succeed; each keeps its own and the previous version's
    // scores, and drops older ones whole.
    let second = fit_as_of(&app, day).await;
    assert_eq!(active_version(&app).await, second.version);
    let third = fit_as_of(&app, day).await;
    assert_eq!(
        partitions(&app).await,
        vec![
            format!("customer_scores_v{}", second.version),
            format!("customer_scores_v{}", third.version)
        ]
    );
    assert_eq!(first_page(&app).await.model_version, third.version);
}

#[tokio::test]
async fn each_stage_of_a_fit_is_timed_in_the_metrics() {
    let app = spawn_app_with(|s| s.metrics_addr = Some(([127, 0, 0, 1], 0).into())).await;
    import(&app, &simulated_purchases()).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let metrics = scrape(app.metrics_addr.expect("metrics endpoint")).await;
    for stage in clvd::service::FitStage::ALL {
        let count = sample(
            &metrics,
            "clvd_fit_stage_seconds_count",
            &[("stage", stage.name())],
        );
        assert_eq!(count, 1.0, "stage {} observed once", stage.name());
        let seconds = sample(
            &metrics,
            "clvd_fit_stage_seconds_sum",
            &[("stage", stage.name())],
        );
        assert!(seconds >= 0.0, "stage {}: {seconds}", stage.name());
    }
}
