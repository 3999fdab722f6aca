//! The same transactions sent three times at once from several clients
//! are stored once, with the summaries of one clean pass in time order.

use clvd::api::pb;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use crate::{helpers::*, oracle};

/// 1,000 transactions over 60 customers: purchases (some same-day, some
/// zero-value, some with cost) and refunds of some of them.
fn workload(rng: &mut StdRng) -> Vec<pb::Transaction> {
    let mut out = Vec::new();
    let mut purchases: Vec<(String, String, i64, chrono::DateTime<chrono::Utc>)> = Vec::new();
    while out.len() < 1_000 {
        let c = format!("cust-{}", rng.random_range(0..60));
        if rng.random_bool(0.15) && !purchases.is_empty() {
            let (pc, pid, amount, when) =
                purchases.swap_remove(rng.random_range(0..purchases.len()));
            if amount > 0 {
                let part = rng.random_range(1..=amount);
                out.push(refund(
                    &pc,
                    &format!("r-{}", out.len()),
                    &pid,
                    when + chrono::Duration::days(3),
                    part,
                ));
            }
            continue;
        }
        let when =
            at(2026, 1, 1, 0, 0) + chrono::Duration::minutes(rng.random_range(0..60 * 24 * 200));
        let cents = if rng.random_bool(0.05) {
            0
        } else {
            rng.random_range(1..50_000)
        };
        let id = format!("p-{}", out.len());
        let mut t = purchase(&c, &id, when, cents);
        if rng.random_bool(0.3) {
            t.cost = Some(usd_cents(cents / 3));
        }
        purchases.push((c, id, cents, when));
        out.push(t);
    }
    out
}

fn is_refund(t: &pb::Transaction) -> bool {
    t.kind == pb::TransactionKind::Refund as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_concurrent_passes_store_each_transaction_once() {
    let mut rng = StdRng::seed_from_u64(7);
    let transactions = workload(&mut rng);

    // A clean pass: one by one, in time order (refunds after purchases).
    let clean = spawn_app().await;
    let mut ordered = transactions.clone();
    ordered.sort_by_key(|t| {
        (
            is_refund(t),
            t.occurred_at.as_ref().map(|ts| (ts.seconds, ts.nanos)),
        )
    });
    let mut client = clean.ingest().await;
    for t in &ordered {
        client.record_transaction(record(t.clone())).await.unwrap();
    }

    // Three passes at once, each split over four clients by customer, each
    // client in shuffled order (its purchases before its refunds, so every
    // refund's purchase has been acknowledged by then). Half the clients
    // use unary calls, half stream batches.
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for pass in 0..3u64 {
        for part in 0..4u64 {
            let mut mine: Vec<pb::Transaction> = transactions
                .iter()
                .filter(|t| t.customer_id.bytes().map(u64::from).sum::<u64>() % 4 == part)
                .cloned()
                .collect();
            let mut rng = StdRng::seed_from_u64(pass * 10 + part);
            mine.shuffle(&mut rng);
            mine.sort_by_key(is_refund);
            let endpoint = app.endpoint();
            tasks.push(tokio::spawn(async move {
                let mut client = pb::ingest_service_client::IngestServiceClient::connect(endpoint)
                    .await
                    .unwrap();
                if (pass + part) % 2 == 0 {
                    for t in mine {
                        client.record_transaction(record(t)).await.unwrap();
                    }
                } else {
                    let (purchases, refunds): (Vec<_>, Vec<_>) =
                        mine.into_iter().partition(|t| !is_refund(t));
                    for group in [purchases, refunds] {
                        let batches: Vec<pb::ImportTransactionsRequest> = group
                            .chunks(37)
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
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    assert_eq!(app.transactions_stored().await, 1_000);
    assert_eq!(clean.transactions_stored().await, 1_000);
    let expected = oracle::expected(&transactions);
    for customer in expected.keys() {
        let concurrent = oracle::observed(&app.summary(customer).await.unwrap());
        let one_by_one = oracle::observed(&clean.summary(customer).await.unwrap());
        assert_eq!(concurrent, one_by_one, "{customer}");
        assert_eq!(concurrent, expected[customer], "{customer}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM customers").await,
        expected.len() as i64
    );
}
