//! DeleteCustomer erases one customer completely and nobody else.

use clvd::api::pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn delete_removes_every_row_of_the_customer_and_nothing_else() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("gone", "p1", at(2026, 1, 1, 0, 0), 1_000),
        purchase("gone", "p2", at(2026, 1, 9, 0, 0), 1_000),
        refund("gone", "r1", "p2", at(2026, 1, 10, 0, 0), 500),
        purchase("kept", "p1", at(2026, 1, 1, 0, 0), 1_000),
        purchase("kept", "p2", at(2026, 1, 3, 0, 0), 2_000),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    for customer in ["gone", "kept"] {
        let f = pb::Feedback {
            nps: Some(10),
            ..crate::feedback::answer(customer, "f1", at(2026, 1, 2, 0, 0))
        };
        crate::feedback::give_feedback(&app, f).await;
    }
    let kept_before = app.summary("kept").await;

    let r = client
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "gone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.transactions_deleted, 3);
    assert!(r.existed);
    for table in ["transactions", "customer_days", "customers", "feedback"] {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE customer_id = 'gone'"
            ))
            .await;
        assert_eq!(n, 0, "{table} still holds the customer");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM transactions WHERE customer_id = 'kept'")
            .await,
        2
    );
    assert_eq!(app.summary("kept").await, kept_before);
    assert_eq!(
        app.count("SELECT count(*) FROM feedback WHERE customer_id = 'kept'")
            .await,
        1
    );

    let again = client
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "gone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.existed);
    assert_eq!(again.transactions_deleted, 0);
}

#[tokio::test]
async fn after_deletion_the_customer_starts_afresh() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(purchase("c", "p1", at(2026, 1, 1, 0, 0), 1_000)))
        .await
        .unwrap();
    client
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "c".into(),
        })
        .await
        .unwrap();
    let r = client
        .record_transaction(record(purchase("c", "p1", at(2026, 2, 1, 0, 0), 300)))
        .await
        .unwrap();
    assert!(!r.into_inner().duplicate);
    assert_eq!(
        app.summary("c").await.unwrap().net_revenue.nanos(),
        i128::from(nanos(300))
    );
}

#[tokio::test]
async fn delete_requires_a_customer_id() {
    let app = spawn_app().await;
    let status = app
        .ingest()
        .await
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["customer_id"]);
}
