//! Every bad field gets INVALID_ARGUMENT naming it, and nothing is stored.

use clvd::api::pb;
use tonic::Code;

use crate::helpers::*;

struct Case {
    name: &'static str,
    transaction: pb::Transaction,
    field: &'static str,
}

fn cases() -> Vec<Case> {
    let ok = purchase("c-valid", "t-new", at(2026, 3, 1, 12, 0), 1_000);
    let mut v = vec![
        Case {
            name: "empty customer id",
            transaction: pb::Transaction {
                customer_id: "".into(),
                ..ok.clone()
            },
            field: "transaction.customer_id",
        },
        Case {
            name: "oversize customer id",
            transaction: pb::Transaction {
                customer_id: "c".repeat(129),
                ..ok.clone()
            },
            field: "transaction.customer_id",
        },
        Case {
            name: "empty transaction id",
            transaction: pb::Transaction {
                transaction_id: "".into(),
                ..ok.clone()
            },
            field: "transaction.transaction_id",
        },
        Case {
            name: "oversize transaction id",
            transaction: pb::Transaction {
                transaction_id: "t".repeat(129),
                ..ok.clone()
            },
            field: "transaction.transaction_id",
        },
        Case {
            name: "missing timestamp",
            transaction: pb::Transaction {
                occurred_at: None,
                ..ok.clone()
            },
            field: "transaction.occurred_at",
        },
        Case {
            // The epoch itself is real history now (issue 12); the floor
            // is the default CLVD_EARLIEST_TRANSACTION_TIME, 1900-01-01.
            name: "timestamp a second before the earliest accepted time",
            transaction: pb::Transaction {
                occurred_at: Some(prost_types::Timestamp {
                    seconds: -2_208_988_801,
                    nanos: 0,
                }),
                ..ok.clone()
            },
            field: "transaction.occurred_at",
        },
        Case {
            name: "timestamp far in the future",
            transaction: pb::Transaction {
                occurred_at: Some(timestamp(at(2099, 1, 1, 0, 0))),
                ..ok.clone()
            },
            field: "transaction.occurred_at",
        },
        Case {
            name: "timestamp nanos out of range",
            transaction: pb::Transaction {
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 1_770_000_000,
                    nanos: 1_000_000_000,
                }),
                ..ok.clone()
            },
            field: "transaction.occurred_at.nanos",
        },
        Case {
            name: "missing kind",
            transaction: pb::Transaction {
                kind: 0,
                ..ok.clone()
            },
            field: "transaction.kind",
        },
        Case {
            name: "unknown kind",
            transaction: pb::Transaction {
                kind: 9,
                ..ok.clone()
            },
            field: "transaction.kind",
        },
        Case {
            name: "missing amount",
            transaction: pb::Transaction {
                amount: None,
                ..ok.clone()
            },
            field: "transaction.amount",
        },
        Case {
            name: "negative purchase",
            transaction: pb::Transaction {
                amount: Some(usd_cents(-1)),
                ..ok.clone()
            },
            field: "transaction.amount",
        },
        Case {
            name: "amount nanos out of range",
            transaction: pb::Transaction {
                amount: Some(pb::Money {
                    currency_code: "USD".into(),
                    units: 1,
                    nanos: 1_000_000_000,
                }),
                ..ok.clone()
            },
            field: "transaction.amount.nanos",
        },
        Case {
            name: "amount units and nanos of opposite signs",
            transaction: pb::Transaction {
                amount: Some(pb::Money {
                    currency_code: "USD".into(),
                    units: 1,
                    nanos: -5,
                }),
                ..ok.clone()
            },
            field: "transaction.amount.nanos",
        },
        Case {
            name: "absurd amount",
            transaction: pb::Transaction {
                amount: Some(pb::Money {
                    currency_code: "USD".into(),
                    units: 2_000_000_000,
                    nanos: 0,
                }),
                ..ok.clone()
            },
            field: "transaction.amount.units",
        },
        Case {
            name: "wrong currency",
            transaction: pb::Transaction {
                amount: Some(pb::Money {
                    currency_code: "EUR".into(),
                    units: 5,
                    nanos: 0,
                }),
                ..ok.clone()
            },
            field: "transaction.amount.currency_code",
        },
        Case {
            name: "negative cost",
            transaction: pb::Transaction {
                cost: Some(usd_cents(-5)),
                ..ok.clone()
            },
            field: "transaction.cost",
        },
        Case {
            name: "purchase naming a refund target",
            transaction: pb::Transaction {
                refunded_transaction_id: "t-1".into(),
                ..ok.clone()
            },
            field: "transaction.refunded_transaction_id",
        },
    ];
    let r = refund("c-valid", "r-new", "p-1", at(2026, 3, 2, 12, 0), 100);
    v.extend([
        Case {
            name: "zero refund",
            transaction: pb::Transaction {
                amount: Some(usd_cents(0)),
                ..r.clone()
            },
            field: "transaction.amount",
        },
        Case {
            name: "negative refund",
            transaction: pb::Transaction {
                amount: Some(usd_cents(-100)),
                ..r.clone()
            },
            field: "transaction.amount",
        },
        Case {
            name: "refund without target",
            transaction: pb::Transaction {
                refunded_transaction_id: "".into(),
                ..r.clone()
            },
            field: "transaction.refunded_transaction_id",
        },
        Case {
            name: "refund of an unknown purchase",
            transaction: pb::Transaction {
                refunded_transaction_id: "p-missing".into(),
                ..r.clone()
            },
            field: "transaction.refunded_transaction_id",
        },
        Case {
            name: "refund of another customer's purchase",
            transaction: pb::Transaction {
                refunded_transaction_id: "p-other".into(),
                ..r.clone()
            },
            field: "transaction.refunded_transaction_id",
        },
        Case {
            name: "refund of a refund",
            transaction: pb::Transaction {
                refunded_transaction_id: "r-1".into(),
                ..r.clone()
            },
            field: "transaction.refunded_transaction_id",
        },
        Case {
            name: "over-refund",
            transaction: pb::Transaction {
                amount: Some(usd_cents(901)),
                ..r.clone()
            },
            field: "transaction.amount",
        },
    ]);
    v
}

#[tokio::test]
async fn each_bad_field_is_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    // Stored beforehand: c-valid's purchase p-1 of $10 with $1 refunded, and
    // another customer's p-other.
    for t in [
        purchase("c-valid", "p-1", at(2026, 3, 1, 10, 0), 1_000),
        refund("c-valid", "r-1", "p-1", at(2026, 3, 1, 11, 0), 100),
        purchase("c-other", "p-other", at(2026, 3, 1, 10, 0), 1_000),
    ] {
        client
            .record_transaction(record(t))
            .await
            .expect("setup transaction");
    }
    let before = app.row_counts().await;
    let summary_before = app.summary("c-valid").await;

    for case in cases() {
        let status = client
            .record_transaction(record(case.transaction))
            .await
            .expect_err(case.name);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{}: {status:?}",
            case.name
        );
        let fields = violated_fields(&status);
        assert!(
            fields.iter().any(|f| f == case.field),
            "{}: expected {} in {fields:?}",
            case.name,
            case.field
        );
        assert_eq!(
            app.row_counts().await,
            before,
            "{}: something was stored",
            case.name
        );
    }
    assert_eq!(app.summary("c-valid").await, summary_before);
}

#[tokio::test]
async fn a_request_without_a_transaction_names_the_field() {
    let app = spawn_app().await;
    let status = app
        .ingest()
        .await
        .record_transaction(pb::RecordTransactionRequest { transaction: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["transaction"]);
}

#[tokio::test]
async fn every_offending_field_is_reported_at_once() {
    let app = spawn_app().await;
    let bad = pb::Transaction {
        customer_id: String::new(),
        occurred_at: None,
        amount: Some(usd_cents(-5)),
        ..purchase("x", "t", at(2026, 1, 1, 0, 0), 1)
    };
    let status = app
        .ingest()
        .await
        .record_transaction(record(bad))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "transaction.amount",
            "transaction.customer_id",
            "transaction.occurred_at"
        ]
    );
}

#[tokio::test]
async fn empty_and_oversize_batches_are_rejected() {
    let app = spawn_app_with(|s| s.max_batch = 5).await;
    let mut client = app.ingest().await;
    for n in [0usize, 6] {
        let batch = pb::ImportTransactionsRequest {
            transactions: (0..n)
                .map(|i| purchase("c", &format!("t{i}"), at(2026, 1, 1, 0, 0), 100))
                .collect(),
        };
        let status = client
            .import_transactions(futures::stream::iter(vec![batch]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "batch of {n}");
        assert_eq!(
            violated_fields(&status),
            vec!["batches[0].transactions"],
            "batch of {n}"
        );
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn a_bad_entry_in_a_batch_is_named_by_its_index() {
    let app = spawn_app().await;
    let batch = pb::ImportTransactionsRequest {
        transactions: vec![
            purchase("c", "t0", at(2026, 1, 1, 0, 0), 100),
            purchase("c", "t1", at(2026, 1, 2, 0, 0), 100),
            pb::Transaction {
                amount: Some(usd_cents(-1)),
                ..purchase("c", "t2", at(2026, 1, 3, 0, 0), 100)
            },
        ],
    };
    let status = app
        .ingest()
        .await
        .import_transactions(futures::stream::iter(vec![batch]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        vec!["batches[0].transactions[2].amount"]
    );
    assert_eq!(app.row_counts().await, (0, 0, 0));
}
