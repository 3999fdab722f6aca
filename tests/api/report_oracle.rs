//! GetCohortReport on a generated data set (thousands of customers, tens of
//! thousands of purchases and refunds, New York time) equals a plain
//! computation from the generated transactions, written here with loops
//! over the list and nothing of the service's code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use clvd::api::pb;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{
    helpers::*,
    models::import,
    report_cohorts::{cents, reports},
};

const ZONE: &str = "America/New_York";

struct Purchase {
    customer: usize,
    id: String,
    at: DateTime<Utc>,
    cents: i64,
    cost_cents: Option<i64>,
}

struct Refund {
    customer: usize,
    of: String,
    at: DateTime<Utc>,
    cents: i64,
}

/// 2,500 customers over 2025-01 .. 2026-06: purchases at random instants
/// (some two on a day), a tenth of them partly refunded up to 60 days later,
/// most with a cost.
fn generate() -> (Vec<Purchase>, Vec<Refund>) {
    let mut rng = StdRng::seed_from_u64(5);
    let start = at(2025, 1, 1, 0, 0);
    let last = at(2026, 6, 30, 23, 0);
    let span = (last - start).num_seconds();
    let (mut purchases, mut refunds) = (Vec::new(), Vec::new());
    for customer in 0..2_500 {
        let first = start + Duration::seconds(rng.random_range(0..span));
        let orders = rng.random_range(1..=20);
        for n in 0..orders {
            let at = if n == 0 {
                first
            } else if rng.random_bool(0.1) {
                first + Duration::minutes(rng.random_range(0..600))
            } else {
                first + Duration::seconds(rng.random_range(0..span / 2))
            }
            .min(last);
            let cents = rng.random_range(0..20_000);
            let id = format!("p{n}");
            if cents > 0 && rng.random_bool(0.1) {
                refunds.push(Refund {
                    customer,
                    of: id.clone(),
                    at: at + Duration::seconds(rng.random_range(1..60 * 86_400)),
                    cents: rng.random_range(1..=cents),
                });
            }
            purchases.push(Purchase {
                customer,
                id,
                at,
                cents,
                cost_cents: rng.random_bool(0.95).then_some(cents / 3),
            });
        }
    }
    (purchases, refunds)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Cell {
    active: usize,
    orders: u64,
    net_cents: i64,
    margin_cents: Option<i64>,
}

/// Per cohort (first day of its period): (size, repeat customers) and the
/// cells by k, from the raw lists, as of `as_of`.
#[allow(clippy::type_complexity)]
fn expected(
    purchases: &[Purchase],
    refunds: &[Refund],
    as_of: DateTime<Utc>,
    months_per_period: u32,
) -> BTreeMap<NaiveDate, ((usize, usize), BTreeMap<i64, Cell>)> {
    let tz: Tz = ZONE.parse().unwrap();
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let period = |d: NaiveDate| (d.year() * 12 + d.month0() as i32) / months_per_period as i32;
    let period_start = |p: i32| {
        let m = p * months_per_period as i32;
        NaiveDate::from_ymd_opt(m / 12, (m % 12) as u32 + 1, 1).unwrap()
    };
    let mut refunded: HashMap<(usize, &str), i64> = HashMap::new();
    for r in refunds.iter().filter(|r| r.at <= as_of) {
        *refunded.entry((r.customer, r.of.as_str())).or_default() += r.cents;
    }
    let seen: Vec<&Purchase> = purchases.iter().filter(|p| p.at <= as_of).collect();
    let mut days: HashMap<usize, BTreeSet<NaiveDate>> = HashMap::new();
    for p in &seen {
        days.entry(p.customer).or_default().insert(day(p.at));
    }
    let mut out: BTreeMap<NaiveDate, ((usize, usize), BTreeMap<i64, Cell>)> = BTreeMap::new();
    let mut active: HashMap<(i32, i64), BTreeSet<usize>> = HashMap::new();
    let mut uncosted: HashMap<(i32, i64), bool> = HashMap::new();
    for ds in days.values() {
        let cohort = period(*ds.first().unwrap());
        let entry = out.entry(period_start(cohort)).or_default();
        entry.0 .0 += 1;
        if ds.len() >= 2 {
            entry.0 .1 += 1;
        }
    }
    for p in &seen {
        let first = *days[&p.customer].first().unwrap();
        let cohort = period(first);
        let k = i64::from(period(day(p.at)) - cohort);
        let net = p.cents
            - refunded
                .get(&(p.customer, p.id.as_str()))
                .copied()
                .unwrap_or(0);
        let cell = out
            .get_mut(&period_start(cohort))
            .unwrap()
            .1
            .entry(k)
            .or_default();
        cell.orders += 1;
        cell.net_cents += net;
        *cell.margin_cents.get_or_insert(0) += net - p.cost_cents.unwrap_or(0);
        active.entry((cohort, k)).or_default().insert(p.customer);
        *uncosted.entry((cohort, k)).or_default() |= p.cost_cents.is_none();
    }
    for ((cohort, k), customers) in active {
        let cell = out
            .get_mut(&period_start(cohort))
            .unwrap()
            .1
            .get_mut(&k)
            .unwrap();
        cell.active = customers.len();
        if uncosted[&(cohort, k)] {
            cell.margin_cents = None;
        }
    }
    out
}

async fn compare(
    app: &TestApp,
    purchases: &[Purchase],
    refunds: &[Refund],
    granularity: pb::Granularity,
    as_of: Option<DateTime<Utc>>,
    at_least_cells: usize,
) {
    let months_per_period = if granularity == pb::Granularity::Quarter {
        3
    } else {
        1
    };
    let oracle_as_of = as_of.unwrap_or_else(Utc::now);
    let want = expected(purchases, refunds, oracle_as_of, months_per_period);
    let report = reports(app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: granularity as i32,
            first_cohort: Some(timestamp(at(2025, 1, 1, 12, 0))),
            as_of: as_of.map(timestamp),
            // Up to the last generated month, or as_of's.
            last_cohort: as_of.is_none().then(|| timestamp(at(2026, 6, 30, 12, 0))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut checked = 0;
    for c in &report.cohorts {
        let start = NaiveDate::parse_from_str(&c.period_label, "%Y-%m-%d").unwrap();
        let Some(((size, repeaters), cells)) = want.get(&start) else {
            assert_eq!(c.size, 0, "cohort {start}");
            continue;
        };
        assert_eq!(c.size as usize, *size, "size of {start}");
        assert_eq!(
            c.repeat_purchase_rate,
            Some(*repeaters as f64 / *size as f64)
        );
        for p in &c.periods {
            let empty = Cell::default();
            let w = cells.get(&i64::from(p.k)).unwrap_or(&empty);
            let got = Cell {
                active: p.active_customers as usize,
                orders: p.orders,
                net_cents: cents(&p.revenue),
                margin_cents: p
                    .margin
                    .as_ref()
                    .map(|_| cents(&p.margin))
                    .filter(|_| w.orders > 0),
            };
            assert_eq!(&got, w, "cohort {start} period {}", p.k);
            assert_eq!(p.retention_rate, Some(w.active as f64 / *size as f64));
            checked += 1;
        }
        let observed: usize = c.periods.len();
        let last_k = cells.keys().max().copied().unwrap_or(0);
        assert!(
            observed as i64 > last_k,
            "cohort {start}: every active period reported"
        );
    }
    assert!(checked >= at_least_cells, "only {checked} cells compared");
    assert_eq!(
        report.cohorts.iter().map(|c| c.size).sum::<u64>() as usize,
        want.values().map(|v| v.0 .0).sum::<usize>()
    );
}

#[tokio::test]
async fn cohort_cells_equal_a_plain_computation_from_the_raw_transactions() {
    let app = spawn_app_with(|s| s.time_zone = ZONE.parse().unwrap()).await;
    let (purchases, refunds) = generate();
    let raw = |p: &Purchase| pb::Transaction {
        cost: p.cost_cents.map(usd_cents),
        ..purchase(&format!("c{}", p.customer), &p.id, p.at, p.cents)
    };
    import(&app, &purchases.iter().map(raw).collect::<Vec<_>>()).await;
    let refunds_pb: Vec<_> = refunds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            refund(
                &format!("c{}", r.customer),
                &format!("r{i}"),
                &r.of,
                r.at,
                r.cents,
            )
        })
        .collect();
    import(&app, &refunds_pb).await;
    assert!(purchases.len() > 20_000 && refunds.len() > 2_000);

    // Everything recorded (the rollups), then a past as_of (the
    // transactions), in months and quarters.
    compare(
        &app,
        &purchases,
        &refunds,
        pb::Granularity::Month,
        None,
        18 * 19 / 2,
    )
    .await;
    let past = at(2025, 11, 17, 15, 30);
    compare(
        &app,
        &purchases,
        &refunds,
        pb::Granularity::Month,
        Some(past),
        11 * 12 / 2,
    )
    .await;
    compare(
        &app,
        &purchases,
        &refunds,
        pb::Granularity::Quarter,
        Some(past),
        4 * 5 / 2,
    )
    .await;
}
