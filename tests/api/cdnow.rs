//! CDNOW end to end over gRPC (issue 12): the 6,919 transactions of Fader
//! & Hardie's CDNOW sample (2,357 customers, 1997-01-01 .. 1998-06-30)
//! imported as dated, a model fitted as of the end of 1997-09-30 (the
//! 39-week calibration of Fader, Hardie & Lee 2005), and the parameters
//! equal to the published ones to their published precision and to
//! lifetimes' fits on the same summaries (tests/fixtures/cdnow, made by its
//! script; no Python runs here).

use std::io::Read;

use chrono::NaiveDate;
use clvd::api::pb;

use crate::{
    helpers::*,
    models::{fit_request, import, models},
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cdnow/cdnow_sample.csv.gz"
);
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cdnow/reference_fits.json"
);

/// A decimal as written ("29.33", "0.00") as USD Money.
fn usd(decimal: &str) -> pb::Money {
    let (units, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    assert!(fraction.len() <= 9, "{decimal}");
    let nanos = format!("{fraction:0<9}").parse::<i32>().unwrap();
    pb::Money {
        currency_code: "USD".into(),
        units: units.parse().unwrap(),
        nanos,
    }
}

/// The fixture's rows as transactions, each at the start of its day (UTC).
fn cdnow_transactions() -> Vec<pb::Transaction> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(FIXTURE).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "customer_id",
            "transaction_id",
            "occurred_at",
            "amount",
            "kind",
            "refunded_transaction_id"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(&r[4], "purchase");
            let day = NaiveDate::parse_from_str(&r[2], "%Y-%m-%d").unwrap();
            pb::Transaction {
                customer_id: r[0].into(),
                transaction_id: r[1].into(),
                occurred_at: Some(timestamp(day.and_hms_opt(0, 0, 0).unwrap().and_utc())),
                kind: pb::TransactionKind::Purchase as i32,
                amount: Some(usd(&r[3])),
                cost: None,
                refunded_transaction_id: String::new(),
            }
        })
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// `got` rounds to `published`, given to `decimals` places.
fn to_published(got: f64, published: f64, decimals: i32) -> bool {
    (got - published).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-12
}

#[tokio::test]
async fn cdnow_imported_as_dated_fits_the_published_parameters() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap();
    let app = spawn_app().await;
    let transactions = cdnow_transactions();
    assert_eq!(transactions.len(), 6_919);
    assert_eq!(
        reference["transactions"].as_u64(),
        Some(transactions.len() as u64)
    );
    import(&app, &transactions).await;
    assert_eq!(app.transactions_stored().await, 6_919);
    assert_eq!(app.count("SELECT count(*) FROM customers").await, 2_357);

    // As of the end of 1997-09-30: T of a 1997-01-01 customer is 272 days,
    // 38.86 weeks, as in the published calibration data. BG/NBD asked for
    // by name: the published parameters are BG/NBD's.
    let model = models(&app)
        .await
        .fit_model(pb::FitModelRequest {
            families: vec![pb::ModelFamily::BgNbd as i32],
            ..fit_request(
                NaiveDate::from_ymd_opt(1997, 9, 30).unwrap(),
                pb::TimeUnit::Week,
            )
        })
        .await
        .expect("fit")
        .into_inner();
    assert_eq!(model.state, pb::ModelState::Succeeded as i32);
    assert_eq!(model.family, pb::ModelFamily::BgNbd as i32);
    assert_eq!(model.time_unit, pb::TimeUnit::Week as i32);
    assert_eq!(model.customers, 2_357);
    assert_eq!(model.spend_customers, 946);
    assert_eq!(reference["customers"].as_i64(), Some(model.customers));
    assert_eq!(
        reference["repeat_customers"].as_i64(),
        Some(model.spend_customers)
    );

    // Fader, Hardie & Lee (2005), weeks: r = 0.243, alpha = 4.414,
    // a = 0.793, b = 2.426, LL = -9582.4.
    let bg = model.bgnbd.unwrap();
    for (name, got, published) in [
        ("r", bg.r, 0.243),
        ("alpha", bg.alpha, 4.414),
        ("a", bg.a, 0.793),
        ("b", bg.b, 2.426),
    ] {
        assert!(to_published(got, published, 3), "{name} = {got}");
        let lifetimes = reference["bgnbd_weeks"][name].as_f64().unwrap();
        assert!(rel(got, lifetimes) < 1e-4, "{name} = {got} vs {lifetimes}");
    }
    assert!(
        to_published(model.log_likelihood, -9582.4, 1),
        "{}",
        model.log_likelihood
    );

    // Gamma-Gamma on the 946 repeat customers' mean repeat spend: Fader &
    // Hardie's note gives p = 6.25, q = 3.74, gamma = 15.44.
    let gg = model.gamma_gamma.unwrap();
    for (name, got, published, lifetimes_name) in [
        ("p", gg.p, 6.25, "p"),
        ("q", gg.q, 3.74, "q"),
        ("gamma", gg.gamma, 15.44, "v"),
    ] {
        assert!(to_published(got, published, 2), "{name} = {got}");
        let lifetimes = reference["gamma_gamma"][lifetimes_name].as_f64().unwrap();
        assert!(rel(got, lifetimes) < 1e-4, "{name} = {got} vs {lifetimes}");
    }
    // EvaluateModel over the 39 + 39 weeks: the same calibration fit, and
    // the holdout's actual repeat occasions (distinct days per customer
    // after 1997-09-30) as counted here.
    let calibration_day = NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
    let holdout_day = NaiveDate::from_ymd_opt(1998, 6, 30).unwrap();
    let end = |d: NaiveDate| fit_request(d, pb::TimeUnit::Week).as_of;
    let evaluation = models(&app)
        .await
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: end(calibration_day),
            holdout_end: end(holdout_day),
            time_unit: pb::TimeUnit::Week as i32,
        })
        .await
        .expect("evaluate")
        .into_inner();
    let occasions: std::collections::BTreeSet<(&str, i64)> = transactions
        .iter()
        .map(|t| {
            let seconds = t.occurred_at.as_ref().unwrap().seconds;
            (t.customer_id.as_str(), seconds.div_euclid(86_400))
        })
        .filter(|(_, day)| {
            let start = calibration_day.and_hms_opt(0, 0, 0).unwrap().and_utc();
            *day > start.timestamp().div_euclid(86_400)
        })
        .collect();
    assert_eq!(evaluation.customers, 2_357);
    assert_eq!(evaluation.holdout_days, 273.0);
    let total = evaluation.total.unwrap();
    assert_eq!(total.actual, occasions.len() as f64);
    assert!(total.predicted > 0.0);
    let eb = evaluation.bgnbd.unwrap();
    assert!(rel(eb.r, bg.r) < 1e-9 && rel(eb.alpha, bg.alpha) < 1e-9);

    // The model's as_of is the past date asked for.
    assert_eq!(
        model.as_of,
        fit_request(
            NaiveDate::from_ymd_opt(1997, 9, 30).unwrap(),
            pb::TimeUnit::Week
        )
        .as_of
    );
}
