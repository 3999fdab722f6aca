//! RecordFeedback and RecordAcquisitionSpend: validated like transactions,
//! idempotent by their keys, and nothing stored when rejected.

use clvd::api::pb;
use tonic::Code;

use crate::helpers::*;

pub fn answer(customer: &str, id: &str, when: chrono::DateTime<chrono::Utc>) -> pb::Feedback {
    pb::Feedback {
        customer_id: customer.into(),
        feedback_id: id.into(),
        occurred_at: Some(timestamp(when)),
        nps: None,
        csat: None,
        ces: None,
    }
}

pub fn spend(
    id: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    cents: i64,
) -> pb::AcquisitionSpend {
    pb::AcquisitionSpend {
        spend_id: id.into(),
        start_time: Some(timestamp(start)),
        end_time: Some(timestamp(end)),
        amount: Some(usd_cents(cents)),
        channel: String::new(),
    }
}

pub async fn give_feedback(app: &TestApp, f: pb::Feedback) -> pb::RecordFeedbackResponse {
    app.ingest()
        .await
        .record_feedback(pb::RecordFeedbackRequest { feedback: Some(f) })
        .await
        .expect("record feedback")
        .into_inner()
}

pub async fn record_spend(
    app: &TestApp,
    s: pb::AcquisitionSpend,
) -> pb::RecordAcquisitionSpendResponse {
    app.ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest { spend: Some(s) })
        .await
        .expect("record spend")
        .into_inner()
}

#[tokio::test]
async fn feedback_is_recorded_once_and_other_content_under_its_key_is_already_exists() {
    let app = spawn_app().await;
    let f = pb::Feedback {
        nps: Some(9),
        csat: Some(4),
        ..answer("c1", "survey-1", at(2026, 3, 1, 12, 0))
    };
    assert!(!give_feedback(&app, f.clone()).await.duplicate);
    assert!(give_feedback(&app, f.clone()).await.duplicate);
    let e = app
        .ingest()
        .await
        .record_feedback(pb::RecordFeedbackRequest {
            feedback: Some(pb::Feedback { nps: Some(3), ..f }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let stored: (i64, Option<i16>, Option<i16>, Option<i16>) =
        sqlx::query_as("SELECT count(*) OVER (), nps, csat, ces FROM feedback")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, (1, Some(9), Some(4), None));
}

#[tokio::test]
async fn invalid_feedback_names_every_field_and_stores_nothing() {
    let app = spawn_app().await;
    let e = app
        .ingest()
        .await
        .record_feedback(pb::RecordFeedbackRequest {
            feedback: Some(pb::Feedback {
                customer_id: String::new(),
                feedback_id: String::new(),
                occurred_at: None,
                nps: Some(-1),
                csat: Some(6),
                ces: Some(0),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&e),
        [
            "feedback.customer_id",
            "feedback.feedback_id",
            "feedback.occurred_at",
            "feedback.nps",
            "feedback.csat",
            "feedback.ces"
        ]
    );
    let none = app
        .ingest()
        .await
        .record_feedback(pb::RecordFeedbackRequest {
            feedback: Some(answer("c", "f", at(2026, 1, 1, 0, 0))),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&none),
        ["feedback.nps", "feedback.csat", "feedback.ces"]
    );
    assert_eq!(app.count("SELECT count(*) FROM feedback").await, 0);
}

#[tokio::test]
async fn spend_is_recorded_once_and_other_content_under_its_key_is_already_exists() {
    let app = spawn_app().await;
    let s = pb::AcquisitionSpend {
        channel: "search".into(),
        ..spend(
            "2026-03",
            at(2026, 3, 1, 0, 0),
            at(2026, 4, 1, 0, 0),
            150_000,
        )
    };
    assert!(!record_spend(&app, s.clone()).await.duplicate);
    assert!(record_spend(&app, s.clone()).await.duplicate);
    let e = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(pb::AcquisitionSpend {
                amount: Some(usd_cents(1)),
                ..s
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let stored: (i64, i64, String) =
        sqlx::query_as("SELECT count(*) OVER (), amount_nanos, channel FROM acquisition_spend")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, (1, nanos(150_000), "search".to_owned()));
}

#[tokio::test]
async fn invalid_spend_names_every_field_and_stores_nothing() {
    let app = spawn_app().await;
    let e = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(pb::AcquisitionSpend {
                spend_id: String::new(),
                start_time: Some(timestamp(at(2026, 3, 2, 0, 0))),
                end_time: Some(timestamp(at(2026, 3, 1, 0, 0))),
                amount: Some(pb::Money {
                    currency_code: "EUR".into(),
                    units: 5,
                    nanos: 0,
                }),
                channel: "x".repeat(129),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&e),
        [
            "spend.spend_id",
            "spend.end_time",
            "spend.amount.currency_code",
            "spend.channel"
        ]
    );
    let negative = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(spend("s", at(2026, 3, 1, 0, 0), at(2026, 3, 2, 0, 0), -100)),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&negative), ["spend.amount"]);
    let missing = app
        .ingest()
        .await
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest { spend: None })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing), ["spend"]);
    assert_eq!(app.count("SELECT count(*) FROM acquisition_spend").await, 0);
}
