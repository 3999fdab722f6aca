//! Property: random purchases (with costs), refunds and acquisition spend,
//! with amounts up to the per-transaction cap and some past it, give
//! customer summaries, per-day rows, cohort cells and report totals equal
//! to an independent computation in arbitrary precision (`num-bigint`),
//! far past the 64-bit range of nanos; every amount past the cap is
//! rejected naming its field, and nothing of it is stored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use num_bigint::BigInt;
use proptest::prelude::*;
use tonic::Code;

use crate::{
    feedback::spend,
    helpers::*,
    money_limits::usd,
    report_cohorts::{monthly, reports},
};

const CAP: i64 = 1_000_000_000;
const NANOS: i64 = 1_000_000_000;
/// Purchases and spend fall on the 90 days from January 1, 2026.
const DAYS: u32 = 90;

/// A valid amount: the cap itself often (so sums pass 64 bits), anything
/// up to it, small amounts and zero.
fn amount() -> impl Strategy<Value = (i64, i32)> {
    prop_oneof![
        3 => Just((CAP, 0)),
        3 => (0..CAP, 0..1_000_000_000i32),
        1 => (0i64..1_000, 0..1_000_000_000i32),
        1 => Just((0, 0)),
    ]
}

/// An amount past the cap, `i64::MIN` and `i64::MAX` included.
fn over_cap() -> impl Strategy<Value = (i64, i32)> {
    prop_oneof![
        Just((i64::MIN, 0)),
        Just((i64::MAX, 999_999_999)),
        (1..1_000_000_000i32).prop_map(|n| (CAP, n)),
        (CAP + 1..=i64::MAX, 0..1_000_000_000i32),
        (i64::MIN..-CAP, -999_999_999..=0i32),
    ]
}

#[derive(Debug, Clone)]
struct Purchase {
    customer: u8,
    day: u32,
    minute: u16,
    amount: (i64, i32),
    cost: Option<(i64, i32)>,
    /// Shares (percent) of what is left, refunded one after another.
    refunds: Vec<(u8, u16)>,
}

fn purchase_strategy() -> impl Strategy<Value = Purchase> {
    (
        0u8..4,
        0..DAYS,
        0u16..1440,
        amount(),
        prop::option::of(amount()),
        prop::collection::vec((1u8..=100, 1u16..240), 0..3),
    )
        .prop_map(|(customer, day, minute, amount, cost, refunds)| Purchase {
            customer,
            day,
            minute,
            amount,
            cost,
            refunds,
        })
}

/// A transaction or spend record with an amount past the cap.
#[derive(Debug, Clone)]
enum Rejected {
    Amount {
        customer: u8,
        day: u32,
        amount: (i64, i32),
    },
    Cost {
        customer: u8,
        day: u32,
        cost: (i64, i32),
    },
    Spend {
        day: u32,
        amount: (i64, i32),
    },
}

fn rejected_strategy() -> impl Strategy<Value = Rejected> {
    prop_oneof![
        (0u8..4, 0..DAYS, over_cap()).prop_map(|(customer, day, amount)| Rejected::Amount {
            customer,
            day,
            amount
        }),
        (0u8..4, 0..DAYS, over_cap()).prop_map(|(customer, day, cost)| Rejected::Cost {
            customer,
            day,
            cost
        }),
        (0..DAYS, over_cap()).prop_map(|(day, amount)| Rejected::Spend { day, amount }),
    ]
}

fn nanos_of(units: i64, nanos: i32) -> i128 {
    i128::from(units) * i128::from(NANOS) + i128::from(nanos)
}

fn money(nanos: i128) -> pb::Money {
    usd(
        i64::try_from(nanos / i128::from(NANOS)).expect("within the cap"),
        (nanos % i128::from(NANOS)) as i32,
    )
}

fn big(m: &Option<pb::Money>) -> BigInt {
    let m = m.as_ref().expect("money present");
    BigInt::from(m.units) * NANOS + m.nanos
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(d.into())
}

fn month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap()
}

fn time(d: u32, minute: u16) -> DateTime<Utc> {
    at(2026, 1, 1, 0, 0) + Duration::days(d.into()) + Duration::minutes(minute.into())
}

/// Half away from zero, as the reports round money per customer.
fn per_customer(total: &BigInt, customers: u64) -> BigInt {
    let n = BigInt::from(customers);
    let q = (total.magnitude() * 2u8 + n.magnitude()) / (n.magnitude() * 2u8);
    if total < &BigInt::from(0) {
        -BigInt::from(q)
    } else {
        BigInt::from(q)
    }
}

/// What the service must hold, computed the plain way.
#[derive(Debug, Default)]
struct Oracle {
    /// Per (customer, day): (net, cost, purchases without a cost).
    days: BTreeMap<(String, NaiveDate), (BigInt, BigInt, u64)>,
    /// Spend per month of its start.
    spend: BTreeMap<NaiveDate, BigInt>,
}

impl Oracle {
    fn customers(&self) -> BTreeSet<&str> {
        self.days.keys().map(|(c, _)| c.as_str()).collect()
    }

    fn first_day(&self, customer: &str) -> NaiveDate {
        self.days
            .keys()
            .filter(|(c, _)| c == customer)
            .map(|(_, d)| *d)
            .min()
            .expect("a purchase day")
    }

    /// (net revenue, repeat value, cost) of a customer.
    fn summary(&self, customer: &str) -> (BigInt, BigInt, BigInt) {
        let first = self.first_day(customer);
        let mut out = (BigInt::from(0), BigInt::from(0), BigInt::from(0));
        for ((c, d), (net, cost, _)) in &self.days {
            if c == customer {
                out.0 += net;
                if *d != first {
                    out.1 += net;
                }
                out.2 += cost;
            }
        }
        out
    }

    /// Per (cohort month, period month): (active customers, net, cost,
    /// purchases without a cost).
    fn cells(&self) -> BTreeMap<(NaiveDate, NaiveDate), (u64, BigInt, BigInt, u64)> {
        let mut active: BTreeSet<(NaiveDate, NaiveDate, &str)> = BTreeSet::new();
        let mut cells: BTreeMap<(NaiveDate, NaiveDate), (u64, BigInt, BigInt, u64)> =
            BTreeMap::new();
        for ((c, d), (net, cost, uncosted)) in &self.days {
            let key = (month(self.first_day(c)), month(*d));
            let cell = cells.entry(key).or_default();
            if active.insert((key.0, key.1, c)) {
                cell.0 += 1;
            }
            cell.1 += net;
            cell.2 += cost;
            cell.3 += uncosted;
        }
        cells
    }

    fn cohort_size(&self, cohort: NaiveDate) -> u64 {
        self.customers()
            .into_iter()
            .filter(|c| month(self.first_day(c)) == cohort)
            .count() as u64
    }
}

#[derive(Debug, Clone)]
struct Case {
    purchases: Vec<Purchase>,
    rejected: Vec<Rejected>,
    spend: Vec<(u32, (i64, i32))>,
    import: bool,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(purchase_strategy(), 1..30),
        prop::collection::vec(rejected_strategy(), 0..5),
        prop::collection::vec((0..DAYS, amount()), 0..14),
        any::<bool>(),
    )
        .prop_map(|(purchases, rejected, spend, import)| Case {
            purchases,
            rejected,
            spend,
            import,
        })
}

/// The case's valid transactions (purchases, then refunds) and the oracle.
fn valid(case: &Case) -> (Vec<pb::Transaction>, Vec<pb::Transaction>, Oracle) {
    let (mut purchases, mut refunds) = (Vec::new(), Vec::new());
    let mut oracle = Oracle::default();
    for (i, p) in case.purchases.iter().enumerate() {
        let customer = format!("c{}", p.customer);
        let id = format!("p{i}");
        let when = time(p.day, p.minute);
        let amount = nanos_of(p.amount.0, p.amount.1);
        purchases.push(pb::Transaction {
            amount: Some(money(amount)),
            cost: p.cost.map(|(u, n)| usd(u, n)),
            ..purchase(&customer, &id, when, 0)
        });
        let mut left = amount;
        for (j, (share, hours)) in p.refunds.iter().enumerate() {
            let r = (left * i128::from(*share) / 100).max(1).min(left);
            if r == 0 {
                break;
            }
            left -= r;
            refunds.push(pb::Transaction {
                amount: Some(money(r)),
                ..refund(
                    &customer,
                    &format!("r{i}-{j}"),
                    &id,
                    when + Duration::hours((*hours).into()),
                    0,
                )
            });
        }
        let entry = oracle.days.entry((customer, day(p.day))).or_default();
        // Refunds are booked on their purchase's day.
        entry.0 += BigInt::from(left);
        match p.cost {
            Some((u, n)) => entry.1 += BigInt::from(nanos_of(u, n)),
            None => entry.2 += 1,
        }
    }
    for (d, (u, n)) in &case.spend {
        *oracle.spend.entry(month(day(*d))).or_default() += BigInt::from(nanos_of(*u, *n));
    }
    (purchases, refunds, oracle)
}

async fn send(app: &TestApp, transactions: Vec<pb::Transaction>, import: bool, chunk: usize) {
    let mut client = app.ingest().await;
    if import {
        if transactions.is_empty() {
            return;
        }
        let batches: Vec<_> = transactions
            .chunks(chunk)
            .map(|c| pb::ImportTransactionsRequest {
                transactions: c.to_vec(),
            })
            .collect();
        client
            .import_transactions(futures::stream::iter(batches))
            .await
            .expect("valid batches are recorded");
    } else {
        for t in transactions {
            client
                .record_transaction(record(t))
                .await
                .expect("a valid transaction is recorded");
        }
    }
}

/// Sends what must be rejected; each call names the field at the cap.
async fn send_rejected(app: &TestApp, rejected: &[Rejected]) {
    let mut client = app.ingest().await;
    for (i, r) in rejected.iter().enumerate() {
        let (result, field) = match r {
            Rejected::Amount {
                customer,
                day,
                amount,
            } => (
                client
                    .record_transaction(record(pb::Transaction {
                        amount: Some(usd(amount.0, amount.1)),
                        ..purchase(&format!("c{customer}"), &format!("x{i}"), time(*day, 0), 0)
                    }))
                    .await
                    .map(|_| ()),
                "transaction.amount.units",
            ),
            Rejected::Cost {
                customer,
                day,
                cost,
            } => (
                client
                    .record_transaction(record(pb::Transaction {
                        cost: Some(usd(cost.0, cost.1)),
                        ..purchase(
                            &format!("c{customer}"),
                            &format!("x{i}"),
                            time(*day, 0),
                            100,
                        )
                    }))
                    .await
                    .map(|_| ()),
                "transaction.cost.units",
            ),
            Rejected::Spend { day, amount } => (
                client
                    .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
                        spend: Some(pb::AcquisitionSpend {
                            amount: Some(usd(amount.0, amount.1)),
                            ..spend(&format!("x{i}"), time(*day, 0), time(*day + 1, 0), 0)
                        }),
                    })
                    .await
                    .map(|_| ()),
                "spend.amount.units",
            ),
        };
        let e = result.expect_err("an amount past the cap is rejected");
        assert_eq!(e.code(), Code::InvalidArgument, "{r:?}: {e:?}");
        assert_eq!(violated_fields(&e), [field], "{r:?}");
    }
}

async fn check(case: Case, chunk: usize) {
    let app = spawn_app().await;
    let (purchases, refunds, oracle) = valid(&case);
    let (n_purchases, n_refunds) = (purchases.len(), refunds.len());
    // Rejected calls first, interleaved with nothing: they must leave no trace.
    send_rejected(&app, &case.rejected).await;
    send(&app, purchases.clone(), case.import, chunk).await;
    send(&app, refunds, case.import, chunk).await;
    // Sent again: duplicates, counted once.
    send(&app, purchases, case.import, chunk).await;
    for (i, (d, (u, n))) in case.spend.iter().enumerate() {
        crate::feedback::record_spend(
            &app,
            pb::AcquisitionSpend {
                amount: Some(usd(*u, *n)),
                ..spend(&format!("s{i}"), time(*d, 0), time(*d + 1, 0), 0)
            },
        )
        .await;
    }
    assert_eq!(
        app.transactions_stored().await,
        (n_purchases + n_refunds) as i64,
        "only the valid transactions are stored"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM acquisition_spend").await,
        case.spend.len() as i64,
        "only the valid spend is stored"
    );

    // Customer summaries, and the historical value served for each.
    let mut scoring = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap());
    for customer in oracle.customers() {
        let (net, repeat, cost) = oracle.summary(customer);
        let s = app.summary(customer).await.expect("customer stored");
        assert_eq!(BigInt::from(s.net_revenue.nanos()), net, "{customer} net");
        assert_eq!(
            BigInt::from(s.repeat_value.nanos()),
            repeat,
            "{customer} repeat"
        );
        assert_eq!(BigInt::from(s.cost.nanos()), cost, "{customer} cost");
        let value = scoring
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: customer.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            big(&value.historical_value),
            net,
            "{customer} historical_value"
        );
    }

    // Per-day rows.
    let rows: Vec<(String, NaiveDate, String, String)> = sqlx::query_as(
        "SELECT customer_id, day, net_nanos::text, cost_nanos::text FROM customer_days",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let stored: BTreeMap<_, _> = rows
        .into_iter()
        .map(|(c, d, net, cost)| {
            (
                (c, d),
                (
                    net.parse::<BigInt>().unwrap(),
                    cost.parse::<BigInt>().unwrap(),
                ),
            )
        })
        .collect();
    let want: BTreeMap<_, _> = oracle
        .days
        .iter()
        .map(|(k, (net, cost, _))| (k.clone(), (net.clone(), cost.clone())))
        .collect();
    assert_eq!(stored, want, "per-day rows");

    // Cohort cells, from the aggregates (no as_of) and from the
    // transactions (a past as_of after everything).
    let cells = oracle.cells();
    let mut reports = reports(&app).await;
    let months = [day(0), month(day(31)), month(day(59))];
    for as_of in [None, Some(timestamp(at(2026, 5, 1, 0, 0)))] {
        let report = reports
            .get_cohort_report(pb::GetCohortReportRequest {
                last_cohort: Some(timestamp(at(2026, 3, 31, 0, 0))),
                as_of,
                ..monthly(at(2026, 1, 1, 0, 0), 3)
            })
            .await
            .expect("the cohort report answers")
            .into_inner();
        assert_eq!(report.cohorts.len(), 3);
        for (cohort, got) in months.iter().zip(&report.cohorts) {
            let size = oracle.cohort_size(*cohort);
            assert_eq!(got.size, size, "{cohort} size");
            let spend = oracle.spend.get(cohort).cloned();
            assert_eq!(
                got.acquisition_spend
                    .as_ref()
                    .map(|m| big(&Some(m.clone()))),
                spend,
                "{cohort} spend"
            );
            if let (Some(spend), true) = (&spend, size > 0) {
                assert_eq!(big(&got.cac), per_customer(spend, size), "{cohort} cac");
            }
            for (k, period) in got.periods.iter().enumerate() {
                let p_month = month(*cohort + chrono::Months::new(k as u32));
                let (active, net, cost, uncosted) =
                    cells.get(&(*cohort, p_month)).cloned().unwrap_or_default();
                let at = format!("{cohort} k={k} as_of={as_of:?}");
                assert_eq!(period.active_customers, active, "{at} active");
                assert_eq!(big(&period.revenue), net, "{at} revenue");
                assert_eq!(
                    period.margin.as_ref().map(|m| big(&Some(m.clone()))),
                    (uncosted == 0).then(|| &net - &cost),
                    "{at} margin"
                );
                if size > 0 {
                    assert_eq!(
                        big(&period.revenue_per_customer),
                        per_customer(&net, size),
                        "{at} revenue per customer"
                    );
                }
            }
        }
    }

    // The loyalty summary over the whole window.
    let loyalty = reports
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(at(2026, 1, 1, 0, 0))),
            end_time: Some(timestamp(at(2026, 4, 1, 0, 0))),
        })
        .await
        .expect("the loyalty summary answers")
        .into_inner();
    let customers = oracle.customers().len() as u64;
    let revenue: BigInt = oracle.days.values().map(|(net, _, _)| net).sum();
    let spend: BigInt = oracle.spend.values().sum();
    assert_eq!(loyalty.customers, customers);
    assert_eq!(big(&loyalty.revenue), revenue, "loyalty revenue");
    assert_eq!(big(&loyalty.acquisition_spend), spend, "loyalty spend");
    assert_eq!(
        big(&loyalty.average_historical_clv),
        per_customer(&revenue, customers),
        "loyalty average historical value"
    );
    app.stop().await;
}

#[test]
fn totals_equal_an_arbitrary_precision_computation_and_amounts_past_the_cap_store_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: 10,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case_strategy(), chunk in 1usize..8)| {
        rt.block_on(check(case, chunk));
    });
}
