//! ListAtRiskCustomers page tokens cannot be forged into errors: an altered,
//! truncated or foreign token, and one naming a model version that cannot
//! be listed, is INVALID_ARGUMENT naming `page_token`, never INTERNAL and
//! never an empty page; genuine tokens page on any replica.

use chrono::NaiveDate;
use clvd::{
    api::pb::{self, scoring_service_client::ScoringServiceClient},
    domain::{seal_page_token, AtRiskCursor, PageTokenKey, TokenKind},
};
use tonic::Code;

use crate::{helpers::*, models::*};

async fn scoring(app: &TestApp) -> ScoringServiceClient<tonic::transport::Channel> {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

fn everyone(page_token: String) -> pb::ListAtRiskCustomersRequest {
    pb::ListAtRiskCustomersRequest {
        page_size: 5,
        page_token,
        min_churn_risk: Some(0.0),
        min_predicted_value: None,
    }
}

/// The call was refused with INVALID_ARGUMENT naming `page_token` only.
fn assert_refused(
    r: Result<tonic::Response<pb::ListAtRiskCustomersResponse>, tonic::Status>,
    what: &str,
) {
    match r {
        Ok(page) => panic!(
            "{what}: answered OK with {} customers of version {}",
            page.get_ref().customers.len(),
            page.get_ref().model_version
        ),
        Err(e) => {
            assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
            assert_eq!(violated_fields(&e), ["page_token"], "{what}");
        }
    }
}

/// The key the tests configure, so that they can sign what an attacker
/// holding it could: the server must still refuse what it never issues.
const KEY: &str = "6b6579206f662074686520706167652d746f6b656e2074657374732c2033322b";

fn key() -> PageTokenKey {
    KEY.parse().unwrap()
}

/// A genuine token's cursor with another version, signed with the key.
fn forge_version(token: &str, version: i64) -> String {
    let mut cursor = AtRiskCursor::open(&key(), token).expect("a genuine token");
    cursor.version = version;
    cursor.seal(&key())
}

/// A genuine token's cursor with raw customer id bytes, signed with the key.
fn forge_cursor(token: &str, customer_id: &[u8]) -> String {
    let cursor = AtRiskCursor::open(&key(), token).expect("a genuine token");
    let mut payload = Vec::new();
    payload.extend_from_slice(&cursor.version.to_be_bytes());
    for v in [
        cursor.min_churn_risk,
        cursor.min_predicted_value,
        cursor.value_at_risk,
    ] {
        payload.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    payload.extend_from_slice(customer_id);
    seal_page_token(&key(), TokenKind::AtRiskCustomers, &payload)
}

#[tokio::test]
async fn every_altered_or_truncated_token_is_invalid_argument() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let first = client
        .list_at_risk_customers(everyone(String::new()))
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    // The genuine token continues the listing.
    let second = client
        .list_at_risk_customers(everyone(token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.customers.len(), 5);
    assert_eq!(second.model_version, first.model_version);
    assert!(second.customers.iter().all(|c| first
        .customers
        .iter()
        .all(|f| f.customer_id != c.customer_id)));

    // Every single-character change, every truncation, an extension.
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'0', b'1', b'A', b'_'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut altered = bytes.to_vec();
            altered[i] = replacement;
            let altered = String::from_utf8(altered).unwrap();
            let r = client
                .list_at_risk_customers(everyone(altered.clone()))
                .await;
            assert_refused(r, &format!("byte {i} of {token:?} changed: {altered:?}"));
        }
        let r = client
            .list_at_risk_customers(everyone(token[..i].to_owned()))
            .await;
        if i > 0 {
            assert_refused(r, &format!("truncated to {i} bytes"));
        }
    }
    for foreign in [
        format!("{token}0"),
        format!("{token}.00"),
        "nope".to_owned(),
        "r1.1.0.0.0.00".to_owned(),
        "v1.1".to_owned(),
    ] {
        let r = client
            .list_at_risk_customers(everyone(foreign.clone()))
            .await;
        assert_refused(r, &foreign);
    }
}

#[tokio::test]
async fn tokens_naming_a_version_that_cannot_be_listed_are_invalid_argument() {
    let app = spawn_app_with(|s| s.page_token_key = Some(key())).await;
    import(&app, &simulated_purchases()).await;
    let mut models = models(&app).await;
    // A failed fit (no purchase before as_of) is a version too.
    let failed = models
        .fit_model(fit_request(
            NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
            pb::TimeUnit::Day,
        ))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition, "{failed:?}");
    let failed_version = models
        .list_models(pb::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .models[0]
        .version;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    fit_as_of(&app, day).await;
    let mut client = scoring(&app).await;
    let token = client
        .list_at_risk_customers(everyone(String::new()))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;

    // Versions and cursors the server never issued, signed with its key.
    for (what, forged) in [
        ("version 999", forge_version(&token, 999)),
        ("version -1", forge_version(&token, -1)),
        ("version 0", forge_version(&token, 0)),
        ("the failed version", forge_version(&token, failed_version)),
        ("cursor 00", forge_cursor(&token, &[0])),
        ("an empty cursor", forge_cursor(&token, b"")),
        (
            "a cursor that is not UTF-8",
            forge_cursor(&token, &[0xff, 0xfe]),
        ),
    ] {
        let r = client.list_at_risk_customers(everyone(forged)).await;
        assert_refused(r, what);
    }

    // A genuine token of a version whose scores were pruned: each fit keeps
    // the scores of the version it replaces, so two more fits prune them.
    fit_as_of(&app, day).await;
    client
        .list_at_risk_customers(everyone(token.clone()))
        .await
        .expect("the previous version's listing still pages");
    fit_as_of(&app, day).await;
    let r = client.list_at_risk_customers(everyone(token)).await;
    // The advice is sent whole: no part of it is cut to fit the message.
    let refused = r.as_ref().expect_err("a pruned version is refused");
    assert!(
        refused
            .message()
            .ends_with("start the listing again without a token"),
        "{}",
        refused.message()
    );
    assert_refused(r, "a version whose scores were pruned");
}

#[tokio::test]
async fn a_token_from_another_replica_on_the_same_database_continues_the_listing() {
    let (database_url, pool) = fresh_database().await;
    // No floor on P(alive), so that min_churn_risk 0 lists everyone.
    let everyone_listed = |s: &mut clvd::config::Settings| s.at_risk_min_probability_alive = 0.0;
    let a = spawn_app_at(database_url.clone(), pool.clone(), everyone_listed).await;
    wait_serving(&a.endpoint()).await;
    let b = spawn_app_at(database_url, pool, everyone_listed).await;
    wait_serving(&b.endpoint()).await;
    import(&a, &simulated_purchases()).await;
    fit_as_of(&a, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let (mut ca, mut cb) = (scoring(&a).await, scoring(&b).await);

    let list = |request: pb::ListAtRiskCustomersRequest| pb::ListAtRiskCustomersRequest {
        page_size: 200,
        ..request
    };
    let mut alternating = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        let client = if page % 2 == 0 { &mut ca } else { &mut cb };
        let r = client
            .list_at_risk_customers(list(everyone(token)))
            .await
            .unwrap_or_else(|e| panic!("page {page}: {e:?}"))
            .into_inner();
        alternating.extend(r.customers.into_iter().map(|c| c.customer_id));
        token = r.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut one_call = ca
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
            page_size: 1_000,
            ..everyone(String::new())
        })
        .await
        .unwrap()
        .into_inner();
    let mut reference: Vec<String> = one_call
        .customers
        .drain(..)
        .map(|c| c.customer_id)
        .collect();
    token = one_call.next_page_token;
    while !token.is_empty() {
        let r = cb
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size: 1_000,
                ..everyone(token)
            })
            .await
            .unwrap()
            .into_inner();
        reference.extend(r.customers.into_iter().map(|c| c.customer_id));
        token = r.next_page_token;
    }
    assert_eq!(alternating.len(), 1_500);
    assert_eq!(alternating, reference);
    assert_eq!(
        a.count("SELECT count(*) FROM service_settings WHERE name = 'page_token_key'")
            .await,
        1,
        "one key, shared through the database"
    );

    // A server configured with a key of its own refuses the others' tokens.
    let c = spawn_app_at(a.database_url.clone(), a.pool.clone(), |s| {
        s.page_token_key = Some(key())
    })
    .await;
    wait_serving(&c.endpoint()).await;
    let token = ca
        .list_at_risk_customers(everyone(String::new()))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let r = scoring(&c)
        .await
        .list_at_risk_customers(everyone(token))
        .await;
    assert_refused(r, "a token signed with another key");
}

#[tokio::test]
async fn list_models_tokens_are_authenticated_too() {
    let app = spawn_app().await;
    let mut client = models(&app).await;
    for _ in 0..4 {
        // Failed fits (nothing recorded) are versions too.
        let _ = client.fit_model(pb::FitModelRequest::default()).await;
    }
    let page = |page_token: String| pb::ListModelsRequest {
        page_size: 2,
        page_token,
        time_unit: 0,
    };
    let first = client
        .list_models(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token;
    let second = client
        .list_models(page(token.clone()))
        .await
        .unwrap()
        .into_inner();
    let versions = |ms: &[pb::Model]| ms.iter().map(|m| m.version).collect::<Vec<_>>();
    assert_eq!(
        [versions(&first.models), versions(&second.models)].concat(),
        [4, 3, 2, 1]
    );
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'0', b'1', b'9', b'A', b'_'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut altered = bytes.to_vec();
            altered[i] = replacement;
            let altered = String::from_utf8(altered).unwrap();
            let e = client
                .list_models(page(altered.clone()))
                .await
                .map(|r| versions(&r.into_inner().models))
                .expect_err(&format!("{altered:?} (from {token:?}) was accepted"));
            assert_eq!(e.code(), Code::InvalidArgument);
            assert_eq!(violated_fields(&e), ["page_token"]);
        }
    }
    // A ListAtRiskCustomers token does not continue ListModels.
    let e = client
        .list_models(page(
            AtRiskCursor {
                version: 1,
                min_churn_risk: 0.0,
                min_predicted_value: 0.0,
                value_at_risk: 1.0,
                customer_id: clvd::domain::CustomerId::parse("x").unwrap(),
            }
            .seal(&key()),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["page_token"]);
}
