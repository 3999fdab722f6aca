//! Identifier rules on every id the API takes: no invisible or
//! direction-changing characters (Unicode Cc, Cf, Zl, Zp), not empty and
//! not all blank. The error names the field and the offending character;
//! nothing is stored.

use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::Code;

use crate::{
    feedback::{answer, spend},
    helpers::*,
};

/// Ids that look fine on screen but are not: each with the code point the
/// error must name (None: blank).
const BAD_IDS: &[(&str, Option<&str>)] = &[
    ("abc\u{202E}fed", Some("U+202E")),
    ("zero\u{200B}width", Some("U+200B")),
    ("join\u{200D}er", Some("U+200D")),
    ("\u{FEFF}bom", Some("U+FEFF")),
    ("iso\u{2066}late", Some("U+2066")),
    ("line\u{2028}sep", Some("U+2028")),
    ("para\u{2029}sep", Some("U+2029")),
    ("soft\u{00AD}hyphen", Some("U+00AD")),
    ("nul\u{0}", Some("U+0000")),
    ("   ", None),
    ("\t\u{3000}\u{00A0}", None),
];

/// (field, description) of each BadRequest violation.
fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

/// The call was refused with INVALID_ARGUMENT naming exactly `field`, and
/// the description names the character (or says the id is blank).
fn assert_refused<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
    bad: &(&str, Option<&str>),
) {
    let status = r.expect_err(&format!("{field} = {:?} was accepted", bad.0));
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{field} = {:?}",
        bad.0
    );
    let vs = violations(&status);
    assert_eq!(vs.len(), 1, "{field} = {:?}: {vs:?}", bad.0);
    assert_eq!(vs[0].0, field, "{:?}", bad.0);
    match bad.1 {
        Some(code_point) => assert!(
            vs[0].1.contains(code_point) && vs[0].1.contains("position"),
            "{field} = {:?}: {}",
            bad.0,
            vs[0].1
        ),
        None => assert!(vs[0].1.contains("blank"), "{:?}: {}", bad.0, vs[0].1),
    }
}

#[tokio::test]
async fn ids_with_invisible_or_bidirectional_characters_or_blank_are_refused_and_nothing_is_stored()
{
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    let when = at(2026, 1, 5, 10, 0);
    // A purchase to refund, so that a refund's only fault is its target.
    ingest
        .record_transaction(record(purchase("ok", "p1", when, 1_000)))
        .await
        .unwrap();
    let stored_before = app.row_counts().await;
    for bad in BAD_IDS {
        let id = bad.0;
        let r = ingest
            .record_transaction(record(purchase(id, "t1", when, 1_000)))
            .await;
        assert_refused(r, "transaction.customer_id", bad);
        let r = ingest
            .record_transaction(record(purchase("ok", id, when, 1_000)))
            .await;
        assert_refused(r, "transaction.transaction_id", bad);
        let r = ingest
            .record_transaction(record(refund("ok", "r1", id, when, 100)))
            .await;
        assert_refused(r, "transaction.refunded_transaction_id", bad);
        let r = ingest
            .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                transactions: vec![
                    purchase("ok", "i1", when, 1_000),
                    purchase(id, "i2", when, 1_000),
                ],
            }]))
            .await;
        let status = r.expect_err("a batch with a bad id was accepted");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            violated_fields(&status)
                .iter()
                .any(|f| f.ends_with("transactions[1].customer_id")),
            "{:?}",
            violated_fields(&status)
        );
        let r = ingest
            .record_feedback(pb::RecordFeedbackRequest {
                feedback: Some(pb::Feedback {
                    nps: Some(9),
                    ..answer(id, "f1", when)
                }),
            })
            .await;
        assert_refused(r, "feedback.customer_id", bad);
        let r = ingest
            .record_feedback(pb::RecordFeedbackRequest {
                feedback: Some(pb::Feedback {
                    nps: Some(9),
                    ..answer("ok", id, when)
                }),
            })
            .await;
        assert_refused(r, "feedback.feedback_id", bad);
        let r = ingest
            .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
                spend: Some(spend(id, when, at(2026, 2, 1, 0, 0), 100)),
            })
            .await;
        assert_refused(r, "spend.spend_id", bad);
    }
    assert_eq!(app.row_counts().await, stored_before, "nothing stored");
    assert_eq!(app.count("SELECT count(*) FROM feedback").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM acquisition_spend").await, 0);

    // The reads refuse them the same way (rather than NOT_FOUND).
    let mut scoring = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap());
    for bad in BAD_IDS {
        let r = scoring
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: bad.0.into(),
                ..Default::default()
            })
            .await;
        assert_refused(r, "customer_id", bad);
        let r = scoring
            .get_churn_risk(pb::GetChurnRiskRequest {
                customer_id: bad.0.into(),
                ..Default::default()
            })
            .await;
        assert_refused(r, "customer_id", bad);
        let r = scoring
            .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
                customer_ids: vec!["ok".into(), bad.0.into()],
                ..Default::default()
            })
            .await;
        assert_refused(r, "customer_ids[1]", bad);
    }
}

#[tokio::test]
async fn visible_unicode_ids_with_inner_spaces_are_still_accepted() {
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    let when = at(2026, 1, 5, 10, 0);
    for id in [
        "naïve café",
        "José Ñandú",
        "顧客 42",
        "שלום",
        "مرحبا",
        "a b",
    ] {
        ingest
            .record_transaction(record(purchase(id, "t1", when, 1_000)))
            .await
            .unwrap_or_else(|e| panic!("{id:?}: {e:?}"));
        assert!(app.summary(id).await.is_some(), "{id:?}");
    }
}

/// Ids stored before the rule are not migrated: they stay readable by the
/// fits and reports, and can still be erased.
#[tokio::test]
async fn an_id_stored_before_the_rule_is_still_scored_and_can_be_erased() {
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    ingest
        .record_transaction(record(purchase(
            "legacy",
            "p1",
            at(2024, 1, 5, 10, 0),
            1_000,
        )))
        .await
        .unwrap();
    crate::models::import(&app, &crate::models::simulated_purchases()).await;
    let legacy = "leg\u{200B}acy";
    for table in ["transactions", "customer_days", "customers"] {
        sqlx::query(&format!(
            "UPDATE {table} SET customer_id = $1 WHERE customer_id = 'legacy'"
        ))
        .bind(legacy)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    crate::models::fit_as_of(&app, chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM customer_scores WHERE customer_id = '{legacy}'"
        ))
        .await,
        1
    );
    let erased = ingest
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: legacy.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(erased.existed);
    assert_eq!(erased.transactions_deleted, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM transactions WHERE customer_id = '{legacy}'"
        ))
        .await,
        0
    );
}
