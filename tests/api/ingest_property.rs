//! Property: random transaction sets (refunds, same-day purchases),
//! recorded in random orders by concurrent clients, give exactly the
//! summaries an independent computation gives.

use clvd::api::pb;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{helpers::*, oracle};

#[derive(Debug, Clone)]
struct Purchase {
    customer: u8,
    day: u8,
    minute: u16,
    cents: i64,
    cost: bool,
    /// Refund shares of the amount, in percent, applied in order while
    /// something is left.
    refunds: Vec<u8>,
}

fn purchase_strategy() -> impl Strategy<Value = Purchase> {
    (
        0u8..5,
        0u8..12,
        0u16..1440,
        prop_oneof![Just(0i64), 1i64..100_000],
        any::<bool>(),
        prop::collection::vec(1u8..=100, 0..3),
    )
        .prop_map(|(customer, day, minute, cents, cost, refunds)| Purchase {
            customer,
            day,
            minute,
            cents,
            cost,
            refunds,
        })
}

/// The transactions of a case, each refund after its purchase in the list.
fn transactions(case: u64, purchases: &[Purchase]) -> Vec<pb::Transaction> {
    let mut out = Vec::new();
    for (i, p) in purchases.iter().enumerate() {
        let customer = format!("case{case}-c{}", p.customer);
        let when = at(2026, 1, 1, 0, 0)
            + chrono::Duration::days(p.day.into())
            + chrono::Duration::minutes(p.minute.into());
        let id = format!("p{i}");
        let mut t = purchase(&customer, &id, when, p.cents);
        if p.cost {
            t.cost = Some(usd_cents(p.cents / 2));
        }
        out.push(t);
        let mut left = p.cents;
        for (j, share) in p.refunds.iter().enumerate() {
            let amount = (p.cents * i64::from(*share) / 100).min(left);
            if amount > 0 {
                left -= amount;
                out.push(refund(
                    &customer,
                    &format!("r{i}-{j}"),
                    &id,
                    when + chrono::Duration::hours(30),
                    amount,
                ));
            }
        }
    }
    out
}

/// A random interleaving in which every refund stays after its purchase:
/// each purchase with its refunds goes to one random sender, at random
/// positions, refunds later than the purchase.
fn senders(
    transactions: &[pb::Transaction],
    n: usize,
    rng: &mut StdRng,
) -> Vec<Vec<pb::Transaction>> {
    let mut lanes: Vec<Vec<(f64, pb::Transaction)>> = vec![Vec::new(); n];
    let mut lane_of = std::collections::HashMap::new();
    for t in transactions {
        if t.kind == pb::TransactionKind::Purchase as i32 {
            let lane = rng.random_range(0..n);
            let pos: f64 = rng.random_range(0.0..1.0);
            lane_of.insert(
                (t.customer_id.clone(), t.transaction_id.clone()),
                (lane, pos),
            );
            lanes[lane].push((pos, t.clone()));
        } else {
            let (lane, after) =
                lane_of[&(t.customer_id.clone(), t.refunded_transaction_id.clone())];
            lanes[lane].push((rng.random_range(after..1.0 + f64::EPSILON), t.clone()));
        }
    }
    lanes
        .into_iter()
        .map(|mut l| {
            l.sort_by(|a, b| a.0.total_cmp(&b.0));
            l.into_iter().map(|(_, t)| t).collect()
        })
        .collect()
}

async fn check(app: &TestApp, case: u64, purchases: Vec<Purchase>, seed: u64, clients: usize) {
    let all = transactions(case, &purchases);
    let mut rng = StdRng::seed_from_u64(seed);
    let lanes = senders(&all, clients, &mut rng);
    let mut tasks = Vec::new();
    for (i, mut lane) in lanes.into_iter().enumerate() {
        let endpoint = app.endpoint();
        let batch_size = rng.random_range(1..8usize);
        let resend = rng.random_bool(0.3);
        if resend {
            let again = lane.clone();
            lane.extend(again);
        }
        tasks.push(tokio::spawn(async move {
            let mut client = pb::ingest_service_client::IngestServiceClient::connect(endpoint)
                .await
                .unwrap();
            if i % 2 == 0 {
                for t in lane {
                    client.record_transaction(record(t)).await.unwrap();
                }
            } else {
                // Batches may not split a purchase from an earlier-lane
                // refund: lanes keep refunds after purchases, and each batch
                // plans purchases first, so any chunking is valid.
                let batches: Vec<_> = lane
                    .chunks(batch_size)
                    .map(|c| pb::ImportTransactionsRequest {
                        transactions: c.to_vec(),
                    })
                    .collect();
                if !batches.is_empty() {
                    client
                        .import_transactions(futures::stream::iter(batches))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected = oracle::expected(&all);
    for (customer, want) in &expected {
        let got = oracle::observed(&app.summary(customer).await.expect("customer stored"));
        assert_eq!(&got, want, "customer {customer}");
    }
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE customer_id LIKE 'case{case}-%'"
        ))
        .await;
    assert_eq!(stored, all.len() as i64);
}

#[test]
fn random_orders_and_concurrency_give_the_independent_summaries() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(spawn_app());
    let case = std::sync::atomic::AtomicU64::new(0);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(purchases in prop::collection::vec(purchase_strategy(), 1..40), seed in any::<u64>(), clients in 1usize..5)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rt.block_on(check(&app, n, purchases, seed, clients));
    });
}
