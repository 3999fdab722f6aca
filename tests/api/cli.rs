//! The `clvd` client commands (fit, model, evaluate, value, churn, at-risk,
//! report ...): the real binary against the real server, its output
//! parsed and compared with the gRPC answer to the same request; errors,
//! exit codes, API keys and TLS.

use std::process::Output;

use chrono::NaiveDate;
use clvd::{api::pb, cli::time::parse_instant};
use serde_json::Value;

use crate::{
    auth::{key_entries, Pki, INGEST_KEY, READ_KEY},
    helpers::*,
    models::{fit_as_of, import, models, simulated_purchases},
    report_cohorts::reports,
};

/// Runs `clvd <args>` against `server` with a clean environment (plus
/// `env`), and returns what it printed and its exit status.
pub async fn clvd_at(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_clvd"));
    cmd.args(args)
        .args(["--server", server])
        .env_remove("CLVD_API_KEY")
        .env_remove("CLVD_SERVER")
        .env_remove("CLVD_OUTPUT")
        .env_remove("CLVD_CA_CERT")
        .env_remove("CLVD_CLIENT_CERT")
        .env_remove("CLVD_CLIENT_KEY")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run clvd")
}

async fn clvd(app: &TestApp, args: &[&str]) -> Output {
    clvd_at(&app.endpoint(), args, &[]).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON a successful command printed.
fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "clvd failed: {}\n{}",
        stderr(out),
        stdout(out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Exit status 1 and the error on stderr, which must start `clvd: `.
fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stdout(out));
    let err = stderr(out);
    assert!(err.starts_with("clvd: "), "{err}");
    err
}

/// Nanos of a printed amount `123.45 USD`, parsed here digit by digit, and
/// its currency.
fn printed_nanos(v: &Value) -> (i128, String) {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not money"));
    let (amount, currency) = s.split_once(' ').expect("amount and currency");
    let (negative, digits) = match amount.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, amount),
    };
    let (whole, frac) = digits.split_once('.').expect("a decimal point");
    assert!((2..=9).contains(&frac.len()), "{s}");
    let nanos = whole.parse::<i128>().unwrap() * 1_000_000_000
        + format!("{frac:0<9}").parse::<i128>().unwrap();
    (if negative { -nanos } else { nanos }, currency.to_owned())
}

/// A printed Money equals the API's, exactly.
fn assert_money(printed: &Value, m: &Option<pb::Money>) {
    match m {
        None => assert!(printed.is_null(), "{printed} printed for no money"),
        Some(m) => {
            let (nanos, currency) = printed_nanos(printed);
            assert_eq!(
                nanos,
                i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos),
                "{printed}"
            );
            assert_eq!(currency, m.currency_code);
        }
    }
}

/// A printed number equals the API's (JSON keeps f64 to the last digit,
/// up to the parser's rounding).
fn assert_number(printed: &Value, want: f64) {
    let got = printed
        .as_f64()
        .unwrap_or_else(|| panic!("{printed} is not a number"));
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
        "{got} != {want}"
    );
}

fn instant(s: &str) -> prost_types::Timestamp {
    parse_instant(s).unwrap()
}

fn rfc3339(t: &Option<prost_types::Timestamp>) -> Value {
    let t = t.as_ref().unwrap();
    let t = chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap();
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_model_and_evaluate_print_the_apis_answers() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;

    let fit = json(&clvd(&app, &["fit", "--as-of", "2024-12-31", "-o", "json"]).await);
    let version = fit["version"].as_i64().expect("a version");
    let model = models(&app)
        .await
        .get_model(pb::GetModelRequest {
            version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fit["state"], "succeeded");
    assert_eq!(fit["active"], true);
    assert_eq!(fit["time_unit"], "day");
    assert_eq!(fit["as_of"], rfc3339(&model.as_of));
    // The end of the day (stored to the microsecond).
    assert_eq!(fit["as_of"], "2024-12-31T23:59:59.999999Z");
    assert_eq!(fit["customers"], model.customers);
    let (bg, gg) = (model.bgnbd.unwrap(), model.gamma_gamma.unwrap());
    for (name, want) in [
        ("r", bg.r),
        ("alpha", bg.alpha),
        ("a", bg.a),
        ("b", bg.b),
        ("p", gg.p),
        ("q", gg.q),
        ("gamma", gg.gamma),
        ("log_likelihood", model.log_likelihood),
    ] {
        assert_number(&fit[name], want);
    }
    assert_eq!(fit["converged"], model.converged);

    // `clvd model` without a version is the active one; weeks scale alpha.
    let active = json(&clvd(&app, &["model", "-o", "json"]).await);
    assert_eq!(active["version"], version);
    let weekly = json(
        &clvd(
            &app,
            &[
                "model",
                &version.to_string(),
                "--time-unit",
                "weeks",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(weekly["time_unit"], "week");
    assert_number(&weekly["alpha"], bg.alpha / 7.0);

    // A terminal gets a field/value table.
    let table = stdout(&clvd(&app, &["model"]).await);
    assert!(
        table.contains("field") && table.contains("succeeded"),
        "{table}"
    );

    let evaluation = json(
        &clvd(
            &app,
            &[
                "evaluate",
                "--calibration-end",
                "2024-09-30",
                "--holdout-end",
                "2024-12-31",
                "-o",
                "json",
            ],
        )
        .await,
    );
    let want = models(&app)
        .await
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: Some(instant("2024-09-30")),
            holdout_end: Some(instant("2024-12-31")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let summary = &evaluation["summary"];
    assert_eq!(summary["customers"], want.customers);
    assert_number(&summary["r"], want.bgnbd.unwrap().r);
    assert_number(
        &summary["mean_absolute_error_per_customer"],
        want.mean_absolute_error_per_customer,
    );
    let groups = evaluation["by_calibration_repeat_occasions"]
        .as_array()
        .unwrap();
    assert_eq!(groups.len(), want.by_calibration_repeat_occasions.len() + 1);
    for (got, want) in groups.iter().zip(
        want.by_calibration_repeat_occasions
            .iter()
            .chain(want.total.as_ref()),
    ) {
        assert_eq!(got["customers"], want.customers);
        assert_number(&got["actual"], want.actual);
        assert_number(&got["predicted"], want.predicted);
    }
    assert_eq!(groups.last().unwrap()["repeat_occasions"], "total");
    assert_eq!(groups[groups.len() - 2]["repeat_occasions"], "7+");

    // A fit the data cannot support: exit 1, the reason on stderr.
    let out = clvd(&app, &["fit", "--as-of", "2023-06-30"]).await;
    let err = failed(&out);
    assert!(err.contains("FailedPrecondition"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_churn_at_risk_and_segments_print_the_apis_answers() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let mut scoring = pb::scoring_service_client::ScoringServiceClient::new(
        channel(&app.endpoint()).await.unwrap(),
    );

    // One customer: every field, money exact.
    let one = json(
        &clvd(
            &app,
            &[
                "value",
                "sim-3",
                "--horizon-months",
                "24",
                "--discount-rate",
                "0.05",
                "-o",
                "json",
            ],
        )
        .await,
    );
    let want = scoring
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "sim-3".into(),
            horizon_months: Some(24),
            annual_discount_rate: Some(0.05),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one["customer_id"], "sim-3");
    assert_eq!(one["horizon_months"], 24);
    assert_eq!(one["model_version"], model.version);
    assert_eq!(one["purchase_occasions"], want.purchase_occasions);
    assert_money(&one["historical_value"], &want.historical_value);
    assert_money(&one["predicted_value"], &want.predicted_value);
    assert_money(&one["total_value"], &want.total_value);
    assert_money(
        &one["expected_average_order_value"],
        &want.expected_average_order_value,
    );
    assert_number(&one["probability_alive"], want.probability_alive.unwrap());
    assert_number(&one["expected_purchases"], want.expected_purchases.unwrap());
    let band = pb::ChurnRiskBand::try_from(want.churn_risk_band).unwrap();
    assert_eq!(
        format!(
            "CHURN_RISK_BAND_{}",
            one["churn_risk_band"].as_str().unwrap()
        )
        .to_uppercase(),
        band.as_str_name()
    );
    assert_eq!(one["segment"], want.segment);
    assert_eq!(one["cohort"], want.cohort);
    // The score intervals and the next purchase, as the API gives them.
    let alive = want
        .probability_alive_interval
        .expect("a P(alive) interval");
    assert_number(&one["interval_level"], alive.level);
    assert_number(&one["probability_alive_lower"], alive.lower);
    assert_number(&one["probability_alive_upper"], alive.upper);
    let purchases = want
        .expected_purchases_interval
        .expect("a purchases interval");
    assert_number(&one["expected_purchases_lower"], purchases.lower);
    assert_number(&one["expected_purchases_upper"], purchases.upper);
    let value = want
        .predicted_value_interval
        .clone()
        .expect("a value interval");
    assert_money(&one["predicted_value_lower"], &value.lower);
    assert_money(&one["predicted_value_upper"], &value.upper);
    let next = want.next_purchase.expect("the next purchase");
    assert_number(&one["next_purchase_median_days"], next.median_days_if_alive);
    assert_number(
        &one["purchase_within_window_probability"],
        next.probability_within_window,
    );
    // --interval-level reaches the call; a bad one is the server's
    // refusal, naming the field.
    let half = json(
        &clvd(
            &app,
            &["value", "sim-3", "--interval-level", "0.5", "-o", "json"],
        )
        .await,
    );
    assert_number(&half["interval_level"], 0.5);
    let narrower = half["probability_alive_upper"].as_f64().unwrap()
        - half["probability_alive_lower"].as_f64().unwrap();
    assert!(narrower <= alive.upper - alive.lower, "{half}");
    let churn = json(
        &clvd(
            &app,
            &["churn", "sim-3", "--interval-level", "0.5", "-o", "json"],
        )
        .await,
    );
    assert_number(&churn["interval_level"], 0.5);
    assert_number(
        &churn["probability_alive_lower"],
        half["probability_alive_lower"].as_f64().unwrap(),
    );
    let err = failed(&clvd(&app, &["value", "sim-3", "--interval-level", "1"]).await);
    assert!(err.contains("interval_level"), "{err}");
    // In a terminal: a field/value table with the money and its currency.
    let table = stdout(
        &clvd(
            &app,
            &[
                "value",
                "sim-3",
                "--horizon-months",
                "24",
                "--discount-rate",
                "0.05",
            ],
        )
        .await,
    );
    assert!(
        table.contains(one["predicted_value"].as_str().unwrap()) && table.contains(" USD"),
        "{table}"
    );

    // Several: one row each in the request's order; unknown ids on stderr
    // and exit 1.
    let out = clvd(&app, &["value", "sim-7", "nobody", "sim-1", "-o", "json"]).await;
    let err = failed(&out);
    assert!(err.contains("nobody") && err.contains("NotFound"), "{err}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = scoring
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: vec!["sim-7".into(), "nobody".into(), "sim-1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (got, want) in rows.iter().zip(&want.values) {
        assert_eq!(got["customer_id"], want.customer_id);
        assert_money(&got["total_value"], &want.total_value);
        assert_number(&got["churn_risk"], want.churn_risk.unwrap());
    }
    assert!(json(&clvd(&app, &["value", "sim-7", "sim-1", "-o", "json"]).await).is_array());

    let churn = json(&clvd(&app, &["churn", "sim-1", "-o", "json"]).await);
    let want = scoring
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: "sim-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_number(&churn["churn_risk"], want.churn_risk);
    assert_number(
        &churn["probability_no_purchase"],
        want.probability_no_purchase,
    );
    assert_eq!(churn["at_risk"], want.at_risk);
    assert_money(&churn["predicted_value"], &want.predicted_value);

    // At risk: the first N of the API's order, pages followed.
    let filters = (Some(0.5), Some(1.0));
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = scoring
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size: 100,
                page_token,
                min_churn_risk: filters.0,
                min_predicted_value: filters.1,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.customers);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(all.len() > 60, "{} at risk: too few to page", all.len());
    let limit = all.len() - 7;
    let listed = json(
        &clvd(
            &app,
            &[
                "at-risk",
                "--limit",
                &limit.to_string(),
                "--min-churn-risk",
                "0.5",
                "--min-value",
                "1",
                "-o",
                "json",
            ],
        )
        .await,
    );
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), limit);
    for (got, want) in listed.iter().zip(&all) {
        assert_eq!(got["customer_id"], want.customer_id);
        assert_money(&got["value_at_risk"], &want.value_at_risk);
        assert_eq!(got["segment"], want.segment);
    }

    let segments = json(&clvd(&app, &["report", "segments", "-o", "json"]).await);
    let want = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap()
        .into_inner();
    let rows = segments.as_array().unwrap();
    let expected: Vec<(&str, &pb::SegmentRow)> = want
        .segments
        .iter()
        .map(|r| ("segment", r))
        .chain(want.value_tiers.iter().map(|r| ("value_tier", r)))
        .collect();
    assert_eq!(rows.len(), expected.len());
    for (got, (group, want_row)) in rows.iter().zip(&expected) {
        assert_eq!(got["group"], *group);
        assert_eq!(got["name"], want_row.name);
        assert_eq!(got["customers"], want_row.customers);
        assert_money(&got["average_value"], &want_row.average_value);
        assert_eq!(got["model_version"], want.model_version);
    }
    let table = stdout(&clvd(&app, &["report", "segments"]).await);
    assert!(
        table.contains("value tiers") && table.contains("top_1_percent"),
        "{table}"
    );

    let loyalty = json(
        &clvd(
            &app,
            &[
                "report",
                "loyalty",
                "--start",
                "2024-03-01",
                "--end",
                "2024-09-01",
                "-o",
                "json",
            ],
        )
        .await,
    );
    let want = reports(&app)
        .await
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(instant("2024-03-01")),
            end_time: Some(instant("2024-09-01")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loyalty["customers"], want.customers);
    assert_eq!(loyalty["new_customers"], want.new_customers);
    assert_number(&loyalty["retention_rate"], want.retention_rate.unwrap());
    assert_money(&loyalty["revenue"], &want.revenue);
    assert_money(
        &loyalty["average_predicted_clv"],
        &want.average_predicted_clv,
    );
}

/// The cells of a terminal table (comfy-table's UTF-8 borders), header
/// first.
fn table_cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split('┆')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cohort_table_shows_the_reports_rates_with_partial_and_forecast_marks() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let model = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()).await;
    let args = [
        "report",
        "cohorts",
        "--first-cohort",
        "2024-01-01",
        "--last-cohort",
        "2024-05-01",
        "--as-of",
        "2024-06-15T00:00:00Z",
        "--periods",
        "9",
        "--forecast",
    ];
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Month as i32,
            first_cohort: Some(instant("2024-01-01")),
            last_cohort: Some(instant("2024-05-01")),
            as_of: Some(instant("2024-06-15T00:00:00Z")),
            periods: 9,
            include_forecast: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.model_version, model.version);
    assert_eq!(report.cohorts.len(), 5);

    let out = clvd(&app, &args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let cells = table_cells(&text);
    let header: Vec<String> = ["cohort", "size"]
        .into_iter()
        .map(String::from)
        .chain((0..9).map(|k| k.to_string()))
        .collect();
    assert_eq!(cells[0], header, "{text}");
    assert_eq!(cells.len(), 1 + report.cohorts.len(), "{text}");
    let (mut partial, mut forecast) = (0, 0);
    for (row, c) in cells[1..].iter().zip(&report.cohorts) {
        assert_eq!(row[0], c.period_label);
        assert_eq!(row[1], c.size.to_string());
        assert_eq!(row.len(), 2 + c.periods.len());
        for (cell, p) in row[2..].iter().zip(&c.periods) {
            let want = if p.forecast {
                forecast += 1;
                format!("~{:.2}", p.expected_purchases.unwrap() / c.size as f64)
            } else {
                format!("{:.1}%", p.retention_rate.unwrap() * 100.0)
            };
            let want = if p.partial {
                partial += 1;
                format!("{want}*")
            } else {
                want
            };
            assert_eq!(*cell, want, "{} k={}", c.period_label, p.k);
        }
    }
    // June is partial for every cohort; July to September are forecasts
    // for each (and later months for the later cohorts).
    assert_eq!(partial, 5);
    assert!(forecast >= 5 * 3, "{forecast}");
    assert!(text.contains("*: partial period"), "{text}");
    assert!(
        text.contains(&format!("~: forecast by model version {}", model.version)),
        "{text}"
    );

    // CSV: the long form, one row per cohort and period, every field.
    let out = clvd(&app, &[&args[..], &["-o", "csv"]].concat()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let periods: Vec<(&pb::Cohort, &pb::CohortPeriod)> = report
        .cohorts
        .iter()
        .flat_map(|c| c.periods.iter().map(move |p| (c, p)))
        .collect();
    assert_eq!(records.len(), periods.len());
    for (r, (c, p)) in records.iter().zip(&periods) {
        assert_eq!(&r[col("cohort")], c.period_label);
        assert_eq!(r[col("k")].parse::<u32>().unwrap(), p.k);
        assert_eq!(r[col("forecast")], p.forecast.to_string());
        assert_eq!(r[col("partial")], p.partial.to_string());
        match p.retention_rate {
            Some(rate) => assert_number(
                &r[col("retention_rate")].parse::<f64>().unwrap().into(),
                rate,
            ),
            None => assert_eq!(&r[col("retention_rate")], ""),
        }
        assert_money(&Value::from(&r[col("revenue")]), &p.revenue);
    }
}

#[tokio::test]
async fn bad_flags_and_bad_requests_exit_non_zero_naming_the_field() {
    let app = spawn_app().await;
    app.ingest()
        .await
        .record_transaction(record(purchase("c1", "t1", at(2026, 1, 5, 10, 0), 1_234)))
        .await
        .unwrap();

    // A flag value clap refuses: usage error, exit 2, naming the flag.
    let out = clvd(&app, &["value", "c1", "--horizon-months", "twelve"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--horizon-months"),
        "{}",
        stderr(&out)
    );
    let out = clvd(&app, &["report", "cohorts", "--first-cohort", "31/01/2026"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--first-cohort"), "{}", stderr(&out));

    // What the server refuses: exit 1, the code and the field violations.
    let err = failed(&clvd(&app, &["value", ""]).await);
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("\n  customer_id: "), "{err}");
    let err = failed(&clvd(&app, &["value", "c1", "--horizon-months", "500"]).await);
    assert!(err.contains("\n  horizon_months: "), "{err}");
    let err = failed(&clvd(&app, &["churn", "nobody"]).await);
    assert!(err.contains("NotFound"), "{err}");
    let err = failed(&clvd(&app, &["at-risk"]).await);
    assert!(err.contains("FailedPrecondition"), "{err}");

    // History is served before any fit; money exact with its currency.
    let value = json(&clvd(&app, &["value", "c1", "-o", "json"]).await);
    assert_eq!(value["historical_value"], "12.34 USD");
    assert_eq!(value["prediction_available"], false);

    // --as-of and --model-version reach the server (which answers for
    // them, whether it serves point-in-time scores or not yet).
    let err = failed(&clvd(&app, &["value", "c1", "--as-of", "2999-01-01"]).await);
    assert!(err.contains("as_of"), "{err}");
    let err = failed(&clvd(&app, &["churn", "c1", "--as-of", "2999-01-01"]).await);
    assert!(err.contains("as_of"), "{err}");
    let err = failed(&clvd(&app, &["value", "c1", "c2", "--model-version", "999"]).await);
    assert!(
        err.contains("model_version") || err.contains("999"),
        "{err}"
    );

    // A forecast asked for without a model says why there is none.
    let out = clvd(
        &app,
        &[
            "report",
            "cohorts",
            "--first-cohort",
            "2026-01-01",
            "--periods",
            "60",
            "--forecast",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no forecast: "), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_comes_from_clvd_api_key() {
    let app = spawn_app_with(|s| {
        s.auth = clvd::config::AuthMode::On;
        s.api_keys = key_entries();
    })
    .await;
    let server = app.endpoint();
    let listed = json(
        &clvd_at(
            &server,
            &["models", "-o", "json"],
            &[("CLVD_API_KEY", READ_KEY)],
        )
        .await,
    );
    assert_eq!(listed, serde_json::json!([]));
    let err = failed(&clvd_at(&server, &["models"], &[]).await);
    assert!(err.contains("Unauthenticated"), "{err}");
    let err = failed(&clvd_at(&server, &["models"], &[("CLVD_API_KEY", INGEST_KEY)]).await);
    assert!(err.contains("PermissionDenied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_servers_are_reached_with_ca_cert() {
    let pki = Pki::new();
    let app = start_app_with(|s| {
        s.auth = clvd::config::AuthMode::On;
        s.api_keys = key_entries();
        s.tls_cert = Some(pki.path("server.pem"));
        s.tls_key = Some(pki.path("server.key"));
    })
    .await;
    let server = format!("https://localhost:{}", app.addr.port());
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let key = [("CLVD_API_KEY", READ_KEY)];
    let mut out = clvd_at(&server, &["models", "-o", "json", "--ca-cert", ca], &key).await;
    for _ in 0..100 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        out = clvd_at(&server, &["models", "-o", "json", "--ca-cert", ca], &key).await;
    }
    assert_eq!(json(&out), serde_json::json!([]));
    // Without the CA the server's certificate is not trusted.
    failed(&clvd_at(&server, &["models"], &key).await);
    // A CA for a plain-text server is a mistake, said before connecting.
    let plain = format!("http://localhost:{}", app.addr.port());
    let err = failed(&clvd_at(&plain, &["models", "--ca-cert", ca], &key).await);
    assert!(err.contains("https"), "{err}");
}
