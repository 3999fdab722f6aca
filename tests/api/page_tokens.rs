//! ListAtRiskCustomers page tokens cannot be forged into errors: an altered,
//! truncated or foreign token, and one naming a model version that cannot
//! be listed, is INVALID_ARGUMENT naming `page_token`, never INTERNAL and
//! never an empty page; genuine tokens page on any replica.

use chrono::NaiveDate;
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
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

/// A token of the old hand-written format with its version or cursor
/// replaced (what an attacker can do to an unauthenticated token).
fn forge(token: &str, version: Option<&str>, cursor_hex: Option<&str>) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    if let Some(v) = version {
        parts[1] = v.to_owned();
    }
    if let Some(c) = cursor_hex {
        parts[5] = c.to_owned();
    }
    parts.join(".")
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
    let app = spawn_app().await;
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

    // Forged versions and cursors.
    for (what, forged) in [
        ("version 999", forge(&token, Some("999"), None)),
        ("version -1", forge(&token, Some("-1"), None)),
        (
            "the failed version",
            forge(&token, Some(&failed_version.to_string()), None),
        ),
        ("cursor 00", forge(&token, None, Some("00"))),
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
    assert_refused(r, "a version whose scores were pruned");
}

#[tokio::test]
async fn a_token_from_another_replica_on_the_same_database_continues_the_listing() {
    let (database_url, pool) = fresh_database().await;
    let a = spawn_app_at(database_url.clone(), pool.clone(), |_| {}).await;
    wait_serving(&a.endpoint()).await;
    let b = spawn_app_at(database_url, pool, |_| {}).await;
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
}
