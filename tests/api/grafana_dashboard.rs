//! The Grafana dashboards (deploy/grafana/dashboards/*.json) against a
//! live clvd: every series that a panel or a template variable queries is
//! one that clvd's `GET /metrics` serves after calls of every kind (OK,
//! refused as invalid, refused for load, an import, a fit), with the labels
//! the query selects, groups by and prints; rates are taken of counters and
//! quantiles of histogram buckets; and every panel says what it shows
//! (title, description, unit) and takes its data source from the
//! dashboard's `datasource` variable. Then a real Prometheus server
//! (`CLVD_PROMETHEUS`; .ci/run unpacks Debian's) scrapes that clvd, and
//! every query of the dashboard, run as Grafana sends it with each variable
//! at "All", returns data.
//!
//! The PromQL is parsed by `promql-parser` (a port of Prometheus's own
//! parser), so that metric names are told apart from functions, keywords,
//! durations and label names by the grammar. A histogram `h` is served as
//! the samples `h_bucket`, `h_sum` and `h_count`, which are the names a
//! query must use: the checks compare against the sample names of the
//! exposition, and take a suffix off only to find a sample's family (its
//! `# TYPE`), and only when that family is a histogram or a summary.

use std::collections::{BTreeMap, BTreeSet};

use clvd::api::pb::{self, ingest_service_client::IngestServiceClient};
use promql_parser::{
    label::{MatchOp, METRIC_NAME},
    parser::{self, Expr, LabelModifier, VectorSelector},
    util::{walk_expr, ExprVisitor},
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Request};

use crate::{helpers::*, models::*};

/// Where the dashboards are, from the repository root.
const DASHBOARDS: &str = "deploy/grafana/dashboards";

/// Labels that Prometheus attaches to every series it scrapes (the target's).
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Series that Prometheus records itself for every target, carrying only the
/// target labels: not in clvd's output, and still there for each clvd.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// What a dashboard variable stands for in a query being parsed.
const VARIABLE: &str = "__grafana_variable__";

#[tokio::test]
async fn every_series_the_dashboard_queries_is_served_by_a_live_clvd() {
    let exposed = Exposed::parse(&scrape_after_calls_of_every_kind().await);
    let dashboards = dashboards();
    assert!(
        dashboards
            .iter()
            .any(|(path, _)| path.ends_with("clvd.json")),
        "{dashboards:?}"
    );
    for (path, dashboard) in &dashboards {
        let problems = check_dashboard(dashboard, &exposed);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            path.display(),
            problems.join("\n")
        );
        // The check looked at something: every panel, every query.
        let queries = panels(dashboard)
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .count();
        assert!(queries >= 20, "{}: {queries} queries", path.display());
    }
}

#[tokio::test]
async fn the_dashboard_check_refuses_what_clvd_does_not_serve() {
    let exposed = Exposed::parse(&scrape_after_calls_of_every_kind().await);
    let (_, mut dashboard) = dashboards()
        .into_iter()
        .find(|(path, _)| path.ends_with("clvd.json"))
        .expect("clvd.json");
    let broken = [
        // A metric clvd does not serve.
        r#"sum(rate(grpc_server_handled_totals{job=~"$job"}[$__rate_interval]))"#,
        // A histogram by its family name: no such series.
        r#"histogram_quantile(0.9, sum by (le) (rate(grpc_server_handling_seconds[5m])))"#,
        // _bucket of a counter.
        r#"sum(rate(clvd_ingest_transactions_total_bucket[5m]))"#,
        // A rate of a gauge.
        r#"rate(clvd_active_model_age_seconds[5m])"#,
        // A quantile of something that has no buckets.
        r#"histogram_quantile(0.5, rate(grpc_server_handling_seconds_count[5m]))"#,
        // Grouping by, and selecting on, labels the series do not have.
        r#"sum by (grpc_metod) (rate(grpc_server_started_total{outcome="recorded"}[5m]))"#,
        // A label value no sample has.
        r#"sum(rate(clvd_ingest_transactions_total{outcome="lost"}[5m]))"#,
        // A variable the dashboard does not define.
        r#"sum(rate(grpc_server_started_total{grpc_method=~"$nope"}[5m]))"#,
        // Not PromQL.
        r#"sum(rate(grpc_server_started_total[5m])"#,
    ];
    let panels = dashboard["panels"].as_array_mut().expect("panels");
    let mut extra = panels
        .iter()
        .find(|p| p["type"] == "timeseries")
        .expect("a time series panel")
        .clone();
    extra["id"] = 999.into();
    extra["title"] = "Broken".into();
    extra["targets"] = broken
        .iter()
        .enumerate()
        .map(|(i, expr)| serde_json::json!({"refId": format!("R{i}"), "expr": expr, "datasource": {"type": "prometheus", "uid": "${datasource}"}}))
        .collect();
    panels.push(extra);
    let unexplained = panels
        .iter_mut()
        .find(|p| p["type"] == "stat")
        .expect("a stat panel");
    unexplained["description"] = "".into();
    unexplained["fieldConfig"]["defaults"]
        .as_object_mut()
        .expect("defaults")
        .remove("unit");
    unexplained["datasource"]["uid"] = "prometheus".into();
    let unexplained = format!("panel {} ", unexplained["id"]);

    let problems = check_dashboard(&dashboard, &exposed);
    let reported = |needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle:?}:\n{}",
            problems.join("\n")
        )
    };
    reported("`grpc_server_handled_totals` is not served");
    reported("`grpc_server_handling_seconds` is not served");
    reported("`clvd_ingest_transactions_total_bucket` is not served");
    reported("rate over `clvd_active_model_age_seconds`, a gauge");
    reported("histogram_quantile over `grpc_server_handling_seconds_count`, which has no `le`");
    reported("groups by `grpc_metod`");
    reported("selects `outcome` on `grpc_server_started_total`");
    reported("`outcome=\"lost\"`");
    reported("`$nope` is not a variable of the dashboard");
    reported("does not parse");
    reported("has no description");
    reported("has no unit");
    reported("its own data source");
    // Nothing else: every problem is in what was planted.
    for problem in &problems {
        assert!(
            problem.contains("\"Broken\"") || problem.starts_with(&unexplained),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus_scraping_clvd() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let (app, _) = app_after_calls_of_every_kind().await;
    let prometheus = Prometheus::start(&binary, app.metrics_addr.expect("metrics")).await;
    for (path, dashboard) in dashboards() {
        let variables: Vec<&Value> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            let query = variable["query"].as_str().unwrap_or_default();
            let (selector, label) = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(','))
                .unwrap_or_else(|| panic!("{}: {query}", path.display()));
            let result = prometheus.query(&all_values(selector)).await;
            assert!(
                result.iter().any(|r| r["metric"][label.trim()].is_string()),
                "{}: variable {}: no value of `{label}` in {result:?}",
                path.display(),
                variable["name"]
            );
        }
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                let result = prometheus.query(&all_values(expr)).await;
                assert!(
                    !result.is_empty(),
                    "{}: panel {} query {}: no data for `{expr}`",
                    path.display(),
                    panel["title"],
                    target["refId"]
                );
            }
        }
    }
    drop(prometheus);
    app.stop().await;
}

/// `expr` as Grafana sends it with every variable at "All" (`.*`) and a
/// rate interval of 10 s (ten scrapes at the test's interval of 1 s).
fn all_values(expr: &str) -> String {
    let mut out = expr.replace("$__rate_interval", "10s");
    for name in ["${datasource}", "$job", "$instance", "$method"] {
        out = out.replace(name, ".*");
    }
    assert!(
        !out.contains('$'),
        "a variable this test does not set: {out}"
    );
    out
}

/// The Prometheus server binary: `CLVD_PROMETHEUS`, else `prometheus` on
/// PATH; `None` (the test skips) when there is none and
/// `CLVD_REQUIRE_PROMETHEUS` is unset. `.ci/run` unpacks Debian's and sets
/// both, so CI cannot skip.
fn prometheus_binary() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("CLVD_PROMETHEUS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(|d| d.join("prometheus"))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var("CLVD_REQUIRE_PROMETHEUS").is_err(),
            "Prometheus is required but neither CLVD_PROMETHEUS nor PATH has it"
        );
        eprintln!("no Prometheus (CLVD_PROMETHEUS, PATH): skipped");
    }
    found
}

/// A Prometheus server of this test, scraping one clvd every second; killed
/// when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Starts it and waits until it has scraped `target` a few times.
    async fn start(binary: &std::path::Path, target: std::net::SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("clvd-prometheus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: clvd\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("write the config");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let prometheus = Self { child, addr, dir };
        // Up, and enough samples for a 10 s rate.
        for _ in 0..600 {
            if let Some(body) = prometheus.get("count_over_time(up[1m])").await {
                let scrapes = body["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if scrapes >= 12.0 {
                    return prometheus;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("Prometheus never scraped clvd at {target}");
    }

    /// The result vector of an instant query; panics on an error.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let body = self
            .get(expr)
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer `{expr}`"));
        assert_eq!(body["status"], "success", "`{expr}`: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GET /api/v1/query` over HTTP/1.0; `None` while it does not answer.
    async fn get(&self, expr: &str) -> Option<Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Percent-encoding by hand: every byte but the unreserved ones
        // (RFC 3986), for one query parameter.
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let request =
            format!("GET /api/v1/query?query={encoded} HTTP/1.0\r\nHost: prometheus\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A clvd with metrics and two call slots (so one caller's share is one),
/// after calls of every kind; returns its `/metrics` text once no call is
/// in flight.
async fn scrape_after_calls_of_every_kind() -> String {
    app_after_calls_of_every_kind().await.1
}

/// [`scrape_after_calls_of_every_kind`], with the server still running.
async fn app_after_calls_of_every_kind() -> (TestApp, String) {
    let app = spawn_app_with(|s| {
        s.metrics_addr = Some(([127, 0, 0, 1], 0).into());
        s.max_concurrent_calls = 2;
    })
    .await;
    let addr = app.metrics_addr.expect("metrics endpoint");

    let mut ingest = app.ingest().await;
    let t = purchase("c1", "t1", at(2024, 3, 5, 10, 0), 1_000);
    ingest.record_transaction(record(t.clone())).await.unwrap();
    let again = ingest.record_transaction(record(t)).await.unwrap();
    assert!(again.into_inner().duplicate);
    let invalid = ingest
        .record_transaction(record(purchase("", "t2", at(2024, 3, 5, 10, 0), 1_000)))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    import(&app, &simulated_purchases()).await;
    fit_as_of(&app, chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;

    // Refused for load: one connection holds its one slot with an open
    // import stream, and its next call is refused.
    let held = channel(&app.endpoint()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(pb::ImportTransactionsRequest {
        transactions: vec![purchase("c3", "t4", at(2024, 3, 6, 0, 0), 100)],
    })
    .unwrap();
    let stream = tokio::spawn({
        let held = held.clone();
        async move {
            IngestServiceClient::new(held)
                .import_transactions(Request::new(UnboundedReceiverStream::new(rx)))
                .await
        }
    });
    let started = |m: &str| {
        sample(
            m,
            "grpc_server_started_total",
            &[("grpc_method", "ImportTransactions")],
        )
    };
    let mut refused = None;
    for _ in 0..400 {
        if started(&scrape(addr).await) >= 2.0 {
            refused = Some(
                IngestServiceClient::new(held.clone())
                    .record_transaction(record(purchase("c2", "t3", at(2024, 3, 6, 0, 0), 100)))
                    .await
                    .unwrap_err(),
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let refused = refused.expect("the held import stream never started");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    drop(tx);
    stream.await.unwrap().expect("the held stream ends OK");

    // Once no call is in flight, the dashboard's in-flight expression
    // (started minus handled) reads 0: refused calls count on both sides.
    for _ in 0..400 {
        let metrics = scrape(addr).await;
        let api = |name: &str| {
            metrics
                .lines()
                .filter(|l| l.starts_with(name) && l.contains("grpc_service=\"clv.v1."))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        let in_flight = api("grpc_server_started_total{") - api("grpc_server_handled_total{");
        assert!(in_flight >= 0.0, "in flight {in_flight}:\n{metrics}");
        if in_flight == 0.0 {
            return (app, metrics);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("calls stayed in flight after every call had ended");
}

/// clvd's exposition: each sample name with its samples' label sets, and
/// each family's type.
///
/// Parsed by hand: the text format's sample line is `name{label="value",...}
/// value` with `\\`, `\"` and `\n` escaped in values, and the crates that
/// parse it would be one more dependency for a dozen lines.
struct Exposed {
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    types: BTreeMap<String, String>,
}

impl Exposed {
    fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
                types.insert(family.to_owned(), kind.trim().to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).expect("a sample line");
            let mut labels = BTreeMap::new();
            if let Some(body) = line[end..].strip_prefix('{') {
                let mut chars = body.chars();
                loop {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    let key = key.trim_start_matches(',').trim();
                    if key.is_empty() || key.starts_with('}') {
                        break;
                    }
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some('n') => value.push('\n'),
                                Some(c) => value.push(c),
                                None => break,
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(key.to_owned(), value);
                    if chars.next() != Some(',') {
                        break;
                    }
                }
            }
            samples
                .entry(line[..end].to_owned())
                .or_default()
                .push(labels);
        }
        Self { samples, types }
    }

    /// The type of the family that the sample `name` belongs to: `name`'s
    /// own, or for `h_bucket` of a histogram `h` (`h_sum`, `h_count` of a
    /// histogram or summary), `h`'s.
    fn family_type(&self, name: &str) -> Option<&str> {
        if let Some(kind) = self.types.get(name) {
            return Some(kind.as_str());
        }
        [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ]
        .into_iter()
        .find_map(|(suffix, kinds)| {
            let kind = self.types.get(name.strip_suffix(suffix)?)?;
            kinds.contains(&kind.as_str()).then_some(kind.as_str())
        })
    }

    /// The label names of the series `name` (the target's included), or
    /// `None` when nothing by that name is served.
    fn label_names(&self, name: &str) -> Option<BTreeSet<String>> {
        let mut names: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        if PROMETHEUS_SERIES.contains(&name) {
            return Some(names);
        }
        for labels in self.samples.get(name)? {
            names.extend(labels.keys().cloned());
        }
        Some(names)
    }

    fn has_value(&self, name: &str, label: &str, matches: impl Fn(&str) -> bool) -> bool {
        self.samples.get(name).is_some_and(|samples| {
            samples
                .iter()
                .any(|s| s.get(label).is_some_and(|v| matches(v.as_str())))
        })
    }
}

/// Every dashboard under [`DASHBOARDS`], parsed.
fn dashboards() -> Vec<(std::path::PathBuf, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARDS);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let dashboard = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            (path, dashboard)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel, those inside rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// What is wrong with `dashboard` against the exposition: one line each.
fn check_dashboard(dashboard: &Value, exposed: &Exposed) -> Vec<String> {
    let variables = dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.as_slice())
        .unwrap_or_default();
    let mut check = Check {
        exposed,
        variables: variables
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect(),
        problems: Vec::new(),
    };
    if !variables.iter().any(|v| {
        v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"
    }) {
        check
            .problems
            .push("no `datasource` variable choosing a Prometheus".into());
    }
    for variable in variables {
        let at = format!(
            "variable `{}`",
            variable["name"].as_str().unwrap_or_default()
        );
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"].as_str().unwrap_or_default();
        let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        else {
            check
                .problems
                .push(format!("{at}: `{query}` is not label_values(...)"));
            continue;
        };
        let Some((selector, label)) = args.rsplit_once(',') else {
            check
                .problems
                .push(format!("{at}: `{query}` names no series"));
            continue;
        };
        let label = label.trim();
        if let Some(names) = check.expr(&at, selector) {
            if !names.contains(label) {
                check.problems.push(format!(
                    "{at}: no series of `{selector}` has the label `{label}`"
                ));
            }
        }
    }

    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        let at = format!("panel {} \"{title}\"", panel["id"]);
        if panel["type"] == "row" {
            continue;
        }
        if title.trim().is_empty() {
            check.problems.push(format!("{at} has no title"));
        }
        if panel["description"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            check.problems.push(format!("{at} has no description"));
        }
        if panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            check.problems.push(format!("{at} has no unit"));
        }
        if panel["datasource"]["uid"] != "${datasource}" {
            check.problems.push(format!(
                "{at} names its own data source, not the dashboard's `datasource` variable"
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(|t| t.as_slice())
            .unwrap_or_default();
        if targets.is_empty() {
            check.problems.push(format!("{at} has no query"));
        }
        for target in targets {
            let at = format!("{at} query {}", target["refId"]);
            if target["datasource"]["uid"] != "${datasource}" {
                check.problems.push(format!(
                    "{at} names its own data source, not the dashboard's `datasource` variable"
                ));
            }
            let expr = target["expr"].as_str().unwrap_or_default();
            let Some(labels) = check.expr(&at, expr) else {
                continue;
            };
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            for label in legend
                .split("{{")
                .skip(1)
                .filter_map(|s| s.split_once("}}"))
            {
                let label = label.0.trim();
                if !labels.contains(label) {
                    check.problems.push(format!(
                        "{at}: the legend prints `{label}`, which no series has"
                    ));
                }
            }
        }
    }
    check.problems
}

struct Check<'a> {
    exposed: &'a Exposed,
    variables: BTreeSet<String>,
    problems: Vec<String>,
}

impl Check<'_> {
    /// Checks one PromQL expression; returns the label names of the series
    /// it selects, or `None` when it does not parse.
    fn expr(&mut self, at: &str, expr: &str) -> Option<BTreeSet<String>> {
        let text = self.substitute(at, expr);
        let parsed = match parser::parse(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.problems
                    .push(format!("{at}: `{expr}` does not parse: {e}"));
                return None;
            }
        };
        let mut visit = Visit {
            exposed: self.exposed,
            at,
            problems: Vec::new(),
            labels: BTreeSet::new(),
        };
        // The visitor never stops the walk (its error type is Infallible).
        let _ = walk_expr(&mut visit, &parsed);
        self.problems.append(&mut visit.problems);
        Some(visit.labels)
    }

    /// `expr` with Grafana's interval variables as a duration and the
    /// dashboard's variables as [`VARIABLE`]; any other variable is a
    /// problem.
    fn substitute(&mut self, at: &str, expr: &str) -> String {
        let mut out = String::new();
        let mut rest = expr;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            let (name, after) = match rest.strip_prefix('{') {
                Some(braced) => braced.split_once('}').unwrap_or((braced, "")),
                None => {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            match name {
                "__rate_interval" | "__interval" | "__range" => out.push_str("1m"),
                _ if self.variables.contains(name) => out.push_str(VARIABLE),
                _ => {
                    self.problems.push(format!(
                        "{at}: `${name}` is not a variable of the dashboard"
                    ));
                    out.push_str(VARIABLE);
                }
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// Walks one parsed expression, noting problems.
struct Visit<'a> {
    exposed: &'a Exposed,
    at: &'a str,
    problems: Vec<String>,
    /// Label names of every series selected.
    labels: BTreeSet<String>,
}

impl ExprVisitor for Visit<'_> {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Call(call) => {
                let name = call.func.name;
                for arg in &call.args.args {
                    for (series, _) in self.series_under(arg) {
                        match name {
                            "rate" | "irate" | "increase" => {
                                let kind = self.exposed.family_type(&series);
                                let counted = kind == Some("counter")
                                    || (matches!(kind, Some("histogram" | "summary"))
                                        && !self.exposed.types.contains_key(&series));
                                if !counted && !PROMETHEUS_SERIES.contains(&series.as_str()) {
                                    if let Some(kind) = kind {
                                        self.problems.push(format!(
                                            "{}: {name} over `{series}`, a {kind}",
                                            self.at
                                        ));
                                    }
                                }
                            }
                            "histogram_quantile" => {
                                let buckets = self
                                    .exposed
                                    .label_names(&series)
                                    .is_some_and(|l| l.contains("le"));
                                if !buckets && self.exposed.samples.contains_key(&series) {
                                    self.problems.push(format!(
                                        "{}: histogram_quantile over `{series}`, which has no `le`",
                                        self.at
                                    ));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            Expr::Aggregate(aggregate) => {
                if let Some(modifier) = &aggregate.modifier {
                    let how = match modifier {
                        LabelModifier::Include(_) => "groups by",
                        LabelModifier::Exclude(_) => "groups without",
                    };
                    let under = self.series_under(&aggregate.expr);
                    self.labels_exist(how, &modifier.labels().labels, &under);
                }
            }
            Expr::Binary(binary) => {
                if let Some(modifier) = &binary.modifier {
                    let mut under = self.series_under(&binary.lhs);
                    under.extend(self.series_under(&binary.rhs));
                    if let Some(matching) = &modifier.matching {
                        self.labels_exist("matches on", &matching.labels().labels, &under);
                    }
                    if let Some(extra) = modifier.card.labels() {
                        self.labels_exist("groups with", &extra.labels, &under);
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

impl Visit<'_> {
    /// The metric name of each selector under `expr`, with its label names
    /// (empty when it is not served: that is reported where it is visited).
    fn series_under(&self, expr: &Expr) -> Vec<(String, BTreeSet<String>)> {
        struct Names(Vec<String>);
        impl ExprVisitor for Names {
            type Error = std::convert::Infallible;
            fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
                let vs = match expr {
                    Expr::VectorSelector(vs) => vs,
                    Expr::MatrixSelector(ms) => &ms.vs,
                    _ => return Ok(true),
                };
                self.0.extend(metric_name(vs));
                Ok(true)
            }
        }
        let mut names = Names(Vec::new());
        let _ = walk_expr(&mut names, expr);
        names
            .0
            .into_iter()
            .map(|n| {
                let labels = self.exposed.label_names(&n).unwrap_or_default();
                (n, labels)
            })
            .collect()
    }

    fn labels_exist(&mut self, how: &str, labels: &[String], under: &[(String, BTreeSet<String>)]) {
        for label in labels {
            if !under.iter().any(|(_, names)| names.contains(label)) {
                self.problems.push(format!(
                    "{}: {how} `{label}`, which none of {:?} has",
                    self.at,
                    under.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ));
            }
        }
    }

    fn selector(&mut self, vs: &VectorSelector) {
        let Some(name) = metric_name(vs) else {
            self.problems
                .push(format!("{}: a selector without a metric name", self.at));
            return;
        };
        let Some(names) = self.exposed.label_names(&name) else {
            self.problems.push(format!(
                "{}: `{name}` is not served by clvd (it serves {:?})",
                self.at,
                self.exposed.samples.keys().collect::<Vec<_>>()
            ));
            return;
        };
        for matcher in &vs.matchers.matchers {
            if matcher.name == METRIC_NAME {
                continue;
            }
            if !names.contains(&matcher.name) {
                self.problems.push(format!(
                    "{}: selects `{}` on `{name}`, which has no such label",
                    self.at, matcher.name
                ));
                continue;
            }
            if TARGET_LABELS.contains(&matcher.name.as_str()) || matcher.value == VARIABLE {
                continue;
            }
            let found = match &matcher.op {
                MatchOp::Equal => self
                    .exposed
                    .has_value(&name, &matcher.name, |v| v == matcher.value),
                MatchOp::Re(re) => self
                    .exposed
                    .has_value(&name, &matcher.name, |v| re.is_match(v)),
                MatchOp::NotEqual | MatchOp::NotRe(_) => true,
            };
            if !found {
                self.problems.push(format!(
                    "{}: no sample of `{name}` matches `{matcher}`",
                    self.at
                ));
            }
        }
        self.labels.extend(names);
    }
}

/// The metric name a selector selects: its name, or its `__name__="..."`.
fn metric_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}
