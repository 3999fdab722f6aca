//! `clvd report html` and `clvd report cohorts --svg`: the real binary
//! against a live server loaded with the example data set
//! (`examples/data/transactions.csv`, imported by `clvd import`, a model
//! fitted by `clvd fit`). The generated page and figures are parsed as XML
//! and what is drawn is compared with the service's own answers to the same
//! requests: each heatmap cell's printed value, colour band and marks; the
//! calibration chart's bars; the loyalty, segment and at-risk tables; and
//! the page has no script and no reference outside itself.

use std::{path::Path, process::Output};

use clvd::{
    api::pb::{self, model_service_client::ModelServiceClient},
    cli::{
        report::charts::{alive, calibration, heatmap, hex},
        time::parse_instant,
    },
};
use roxmltree::{Document, Node, ParsingOptions};

use crate::{helpers::*, report_cohorts::reports};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/transactions.csv"
);

/// The report's as-of: inside October 2026, so that October is a partial
/// period; 24 periods from January 2025 reach past it into forecasts.
const AS_OF: &str = "2026-10-20";
const FIRST: &str = "2025-01-01";
const PERIODS: &str = "24";

async fn clvd(app: &TestApp, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clvd"))
        .args(args)
        .args(["--server", &app.endpoint()])
        .env_remove("CLVD_API_KEY")
        .env_remove("CLVD_SERVER")
        .env_remove("CLVD_OUTPUT")
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("run clvd")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "clvd failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The example data imported and a model fitted as of [`AS_OF`].
async fn example_app() -> TestApp {
    let app = spawn_app().await;
    ok(&clvd(&app, &["import", DATA, "--quiet", "-o", "json"]).await);
    ok(&clvd(&app, &["fit", "--as-of", AS_OF, "-o", "json"]).await);
    app
}

fn instant(s: &str) -> prost_types::Timestamp {
    parse_instant(s).expect("a valid instant")
}

/// The cohort report the commands ask for, straight from the API.
async fn cohort_report(app: &TestApp) -> pb::CohortReport {
    reports(app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Month as i32,
            first_cohort: Some(instant(FIRST)),
            last_cohort: None,
            as_of: Some(instant(AS_OF)),
            periods: PERIODS.parse().unwrap(),
            include_forecast: true,
        })
        .await
        .expect("GetCohortReport")
        .into_inner()
}

/// The active model, as the commands ask for it (days).
async fn active_model(app: &TestApp) -> pb::Model {
    ModelServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .get_model(pb::GetModelRequest {
            version: 0,
            time_unit: pb::TimeUnit::Day as i32,
        })
        .await
        .expect("GetModel")
        .into_inner()
}

/// EvaluateModel's answer for a calibration period ending `calibration_end`
/// and a holdout ending `holdout_end`, in days, for the default families.
async fn evaluation(
    app: &TestApp,
    calibration_end: prost_types::Timestamp,
    holdout_end: prost_types::Timestamp,
) -> pb::ModelEvaluation {
    ModelServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: Some(calibration_end),
            holdout_end: Some(holdout_end),
            time_unit: pb::TimeUnit::Day as i32,
            families: Vec::new(),
        })
        .await
        .expect("EvaluateModel")
        .into_inner()
}

/// The flags of the cohort commands' figures: the report's cohorts, as-of,
/// periods and forecasts, as [`cohort_report`] asks for them.
const COHORT_FLAGS: [&str; 7] = [
    "--first-cohort",
    FIRST,
    "--as-of",
    AS_OF,
    "--periods",
    PERIODS,
    "--forecast",
];

/// Runs `clvd args` (which must succeed) and returns the figure it drew:
/// the file named by `--out`/`--svg` (then nothing else is printed), or
/// standard output.
async fn drawn(app: &TestApp, args: &[&str]) -> String {
    let run = clvd(app, args).await;
    ok(&run);
    let file = args
        .iter()
        .position(|a| *a == "--out" || *a == "--svg")
        .map(|i| args[i + 1]);
    match file {
        Some(path) => {
            assert!(
                run.stdout.is_empty(),
                "{args:?}: the figure alone, to {path}"
            );
            std::fs::read_to_string(path).expect("the figure was written")
        }
        None => String::from_utf8(run.stdout).expect("UTF-8"),
    }
}

/// Asserts that `run` failed (exit 1) naming `needle` on standard error.
fn refused(run: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

fn parse(text: &str) -> Document<'_> {
    Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("not well-formed: {e}"))
}

fn num(n: Node<'_, '_>, attr: &str) -> f64 {
    n.attribute(attr)
        .unwrap_or_else(|| panic!("{attr} missing on {n:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{attr} of {n:?}: {e}"))
}

/// A drawn rectangle.
#[derive(Debug, Clone)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: String,
    stroke: String,
}

impl Rect {
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.x && x <= self.x + self.w && y >= self.y && y <= self.y + self.h
    }
}

fn rects(svg: Node<'_, '_>) -> Vec<Rect> {
    svg.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| Rect {
            x: num(n, "x"),
            y: num(n, "y"),
            w: num(n, "width"),
            h: num(n, "height"),
            fill: n.attribute("fill").unwrap_or("").to_owned(),
            stroke: n.attribute("stroke").unwrap_or("").to_owned(),
        })
        .collect()
}

/// Every `<text>`: its content and anchor point.
fn texts(svg: Node<'_, '_>) -> Vec<(String, f64, f64)> {
    svg.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            (
                n.text().unwrap_or("").trim().to_owned(),
                num(n, "x"),
                num(n, "y"),
            )
        })
        .collect()
}

/// The first points of every `<polyline>` of a colour.
fn polyline_starts(svg: Node<'_, '_>, stroke: &str) -> Vec<(f64, f64)> {
    svg.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(stroke))
        .filter_map(|n| {
            let first = n.attribute("points")?.split_whitespace().next()?.to_owned();
            let (x, y) = first.split_once(',')?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect()
}

/// The points of every `<polyline>` of a colour.
fn polylines(svg: Node<'_, '_>, stroke: &str) -> Vec<Vec<(f64, f64)>> {
    svg.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(stroke))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|xy| {
                    let (x, y) = xy.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect()
        })
        .collect()
}

/// What a cell must say, computed here from the API's figures: the
/// retention rate as a percent with one decimal (`*` after it when
/// partial), or for a forecast `~` and expected purchases per customer.
fn expected_text(c: &pb::Cohort, p: &pb::CohortPeriod) -> String {
    let text = if p.forecast {
        let expected = p
            .expected_purchases
            .expect("a forecast has expected purchases");
        format!("~{:.2}", expected / c.size as f64)
    } else {
        match p.retention_rate {
            Some(rate) => format!("{:.1}%", rate * 100.0),
            None => return String::new(),
        }
    };
    if p.partial {
        format!("{text}*")
    } else {
        text
    }
}

/// Checks every cell of a heatmap against `report`; returns the partial
/// and forecast cells seen.
fn check_heatmap(svg: Node<'_, '_>, report: &pb::CohortReport) -> (usize, usize) {
    let texts = texts(svg);
    let rects = rects(svg);
    let hatches = polyline_starts(svg, &hex(heatmap::HATCH));
    // Rows by their label "YYYY-MM-DD (size)", columns by their header k.
    let row_y = |c: &pb::Cohort| {
        let want = format!("{} ({})", c.period_label, c.size);
        let found: Vec<f64> = texts.iter().filter(|t| t.0 == want).map(|t| t.2).collect();
        assert_eq!(found.len(), 1, "row label {want:?}: {found:?}");
        found[0]
    };
    let column_x = |k: u32| {
        let want = k.to_string();
        let found: Vec<f64> = texts.iter().filter(|t| t.0 == want).map(|t| t.1).collect();
        assert_eq!(found.len(), 1, "column header {want:?}: {found:?}");
        found[0]
    };
    let (mut partial, mut forecast) = (0, 0);
    for c in &report.cohorts {
        let y = row_y(c);
        for p in &c.periods {
            let x = column_x(p.k);
            let want = expected_text(c, p);
            let at: Vec<&str> = texts
                .iter()
                .filter(|t| t.1 == x && t.2 == y)
                .map(|t| t.0.as_str())
                .collect();
            if want.is_empty() {
                assert!(at.is_empty(), "{} k={}: {at:?}", c.period_label, p.k);
            } else {
                assert_eq!(at, [want.as_str()], "{} k={}", c.period_label, p.k);
            }
            // The cell: the filled rectangle under the value.
            let cell = rects
                .iter()
                .filter(|r| r.fill != "none" && r.contains((x, y)))
                .min_by(|a, b| (a.w * a.h).total_cmp(&(b.w * b.h)))
                .unwrap_or_else(|| panic!("no cell under {} k={}", c.period_label, p.k));
            let fill = if p.forecast {
                hex(heatmap::FORECAST_FILL)
            } else {
                p.retention_rate
                    .map_or(hex(heatmap::EMPTY_FILL), |r| hex(heatmap::band(r)))
            };
            assert_eq!(
                cell.fill, fill,
                "{} k={} rate {:?}",
                c.period_label, p.k, p.retention_rate
            );
            let outlined = rects
                .iter()
                .any(|r| r.stroke == hex(heatmap::PARTIAL_OUTLINE) && r.contains((x, y)));
            assert_eq!(outlined, p.partial, "{} k={} outline", c.period_label, p.k);
            let hatched = hatches.iter().any(|&point| cell.contains(point));
            assert_eq!(hatched, p.forecast, "{} k={} hatching", c.period_label, p.k);
            partial += usize::from(p.partial);
            forecast += usize::from(p.forecast);
        }
    }
    // The legend names every band and both marks.
    for (i, (_, colour)) in heatmap::BANDS.iter().enumerate() {
        assert!(
            rects.iter().any(|r| r.fill == hex(*colour)),
            "band {i} swatch"
        );
        let name = heatmap::band_label(i);
        assert!(texts.iter().any(|t| t.0 == name), "band label {name:?}");
    }
    assert!(texts.iter().any(|t| t.0.starts_with("* partial period")));
    assert!(texts.iter().any(|t| t.0.starts_with("~ forecast")));
    // Title, as-of time and model version.
    assert!(texts.iter().any(|t| t.0.starts_with("Cohort retention")));
    let all: Vec<&str> = texts.iter().map(|t| t.0.as_str()).collect();
    let all = all.join(" ");
    assert!(all.contains("As of 2026-10-20T23:59:59Z"), "the as-of time");
    assert!(
        all.contains(&format!("model version {}", report.model_version)),
        "the model version"
    );
    (partial, forecast)
}

/// The calibration chart's bars against EvaluateModel's groups.
fn check_calibration(svg: Node<'_, '_>, evaluation: &pb::ModelEvaluation) {
    let texts = texts(svg);
    let bars: Vec<Rect> = rects(svg)
        .into_iter()
        .filter(|r| r.fill == hex(calibration::ACTUAL) || r.fill == hex(calibration::PREDICTED))
        .collect();
    // The bars stand on the axis: the most common bottom edge (the legend's
    // swatches stand elsewhere).
    let bottom = {
        let mut bottoms: Vec<i64> = bars.iter().map(|r| (r.y + r.h) as i64).collect();
        bottoms.sort_unstable();
        let mut best = (0, 0);
        for b in &bottoms {
            let n = bottoms.iter().filter(|x| *x == b).count();
            if n > best.1 {
                best = (*b, n);
            }
        }
        best.0 as f64
    };
    let bars: Vec<&Rect> = bars.iter().filter(|r| r.y + r.h == bottom).collect();
    let groups = &evaluation.by_calibration_repeat_occasions;
    assert!(groups.len() >= 3, "{groups:?}");
    let mut drawn = Vec::new();
    for g in groups {
        // The group's centre: its label and its customer count, one above
        // the other.
        let label = calibration::group_label(g);
        let n = format!("n={}", g.customers);
        let x = texts
            .iter()
            .filter(|t| t.0 == label)
            .map(|t| t.1)
            .find(|x| texts.iter().any(|t| t.0 == n && t.1 == *x))
            .unwrap_or_else(|| panic!("group {label} ({n}) not labelled"));
        for (value, colour, left) in [
            (g.actual_per_customer, calibration::ACTUAL, true),
            (g.predicted_per_customer, calibration::PREDICTED, false),
        ] {
            let bar = bars.iter().find(|r| {
                r.fill == hex(colour)
                    && if left {
                        r.x + r.w <= x && r.x + r.w >= x - 4.0
                    } else {
                        r.x >= x && r.x <= x + 4.0
                    }
            });
            let height = bar.map_or(0.0, |r| r.h);
            // The value printed above the bar, at its centre.
            let want = format!("{value:.2}");
            let printed = texts.iter().any(|t| {
                t.0 == want
                    && bar.is_none_or(|r| (t.1 - (r.x + r.w / 2.0)).abs() <= 1.0 && t.2 <= r.y)
            });
            assert!(printed, "group {label}: {want} not printed over its bar");
            drawn.push((value, height));
        }
    }
    // Heights proportional to the values (to the pixel).
    let (vmax, hmax) = drawn
        .iter()
        .copied()
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
    assert!(vmax > 0.0 && hmax > 0.0, "{drawn:?}");
    for (v, h) in &drawn {
        assert!(
            (h - v / vmax * hmax).abs() <= 1.5,
            "bar of {v} is {h} px; the tallest, {vmax}, is {hmax} px"
        );
    }
}

/// The P(alive) matrix against the model's own formula at each drawn
/// (frequency, recency) cell.
fn check_alive(svg: Node<'_, '_>, model: &pb::Model, t_days: f64) {
    check_matrix(svg, model, t_days, alive::Measure::Alive, 0.0)
}

/// A frequency/recency matrix: each cell prints the model's P(alive) or
/// purchases expected over `horizon_days`, for a customer first seen
/// `t_days` before the model's as-of.
fn check_matrix(
    svg: Node<'_, '_>,
    model: &pb::Model,
    t_days: f64,
    measure: alive::Measure,
    horizon_days: f64,
) {
    let texts = texts(svg);
    let bg = model.bgnbd.as_ref().expect("BG/NBD parameters");
    let params: clv_model::PurchaseParams = clv_model::BgNbdParams::new(bg.r, bg.alpha, bg.a, bg.b)
        .unwrap()
        .into();
    // Row labels stand under the "repeat purchases" axis label, column
    // labels beside it.
    let axis = texts
        .iter()
        .find(|t| t.0 == "repeat purchases")
        .expect("the rows' axis label");
    let rows: Vec<(u32, f64)> = texts
        .iter()
        .filter(|t| t.1 == axis.1 && t.2 > axis.2)
        .map(|t| (t.0.parse().expect("a whole number of purchases"), t.2))
        .collect();
    let columns: Vec<(u32, f64)> = texts
        .iter()
        .filter(|t| t.2 == axis.2 && t.1 > axis.1)
        .map(|t| (t.0.parse().expect("whole days"), t.1))
        .collect();
    assert_eq!(rows.len(), alive::MAX_X as usize, "{rows:?}");
    assert_eq!(columns.len(), alive::COLUMNS as usize, "{columns:?}");
    for (x, y) in &rows {
        for (j, (days, cx)) in columns.iter().enumerate() {
            let t_x = alive::recency(j as u32, t_days);
            assert_eq!(*days, t_x.round() as u32, "column {j}");
            let summary = clv_model::CustomerSummary::new(f64::from(*x), t_x, t_days, 0.0).unwrap();
            let want = match measure {
                alive::Measure::Alive => params.probability_alive(&summary),
                alive::Measure::Expected => params.expected_purchases(&summary, horizon_days),
            };
            let want = format!("{want:.2}");
            let at: Vec<&str> = texts
                .iter()
                .filter(|t| t.1 == *cx && t.2 == *y)
                .map(|t| t.0.as_str())
                .collect();
            assert_eq!(at, [want.as_str()], "x={x}, t_x={t_x}");
        }
    }
}

/// The figure `id` of the page.
fn figure_svg<'a, 'input>(doc: &'a Document<'input>, id: &str) -> Node<'a, 'input> {
    doc.descendants()
        .find(|n| n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no #{id}"))
        .descendants()
        .find(|n| n.has_tag_name("svg"))
        .unwrap_or_else(|| panic!("#{id} has no svg"))
}

/// The Pareto curve: from (0, 0) to where the equal-shares diagonal ends
/// (100%, 100%), through GetSegmentReport's points, with the top-20%
/// reading interpolated here from those points.
fn check_pareto(pareto: Node<'_, '_>, segments: &pb::SegmentReport) {
    let diagonal = polylines(pareto, "#999999");
    let curve = polylines(pareto, "#08306B");
    assert_eq!(
        (diagonal.len(), curve.len()),
        (1, 1),
        "one diagonal, one curve"
    );
    let (origin, corner) = (diagonal[0][0], diagonal[0][1]);
    let points = &curve[0];
    assert_eq!(points.len(), segments.value_curve.len() + 1);
    let near = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() <= 1.0 && (a.1 - b.1).abs() <= 1.0;
    assert!(near(points[0], origin), "{:?} vs {origin:?}", points[0]);
    assert!(
        near(*points.last().unwrap(), corner),
        "the curve ends at 100%"
    );
    let last = segments.value_curve.last().unwrap();
    assert_eq!((last.customer_share, last.value_share), (1.0, 1.0));
    for (drawn, p) in points[1..].iter().zip(&segments.value_curve) {
        let want = (
            origin.0 + p.customer_share * (corner.0 - origin.0),
            origin.1 + p.value_share * (corner.1 - origin.1),
        );
        assert!(near(*drawn, want), "{drawn:?} vs {want:?} for {p:?}");
    }
    let fifth = segments
        .value_curve
        .iter()
        .position(|p| p.customer_share >= 0.2)
        .unwrap();
    let (x0, y0) = match fifth {
        0 => (0.0, 0.0),
        i => (
            segments.value_curve[i - 1].customer_share,
            segments.value_curve[i - 1].value_share,
        ),
    };
    let p = &segments.value_curve[fifth];
    let top_fifth = y0 + (0.2 - x0) / (p.customer_share - x0) * (p.value_share - y0);
    let reading = format!("top 20%: {:.1}% of value", top_fifth * 100.0);
    assert!(
        texts(pareto).iter().any(|(t, _, _)| *t == reading),
        "{reading} not printed"
    );
}

/// The cells of the row of a table whose first cell is `first`.
fn table_row(doc: &Document<'_>, section: &str, first: &str) -> Vec<String> {
    let node = doc
        .descendants()
        .find(|n| n.attribute("id") == Some(section))
        .unwrap_or_else(|| panic!("no #{section}"));
    node.descendants()
        .filter(|n| n.has_tag_name("tr"))
        .map(|tr| {
            tr.children()
                .filter(|c| c.has_tag_name("td"))
                .map(|td| td.text().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in #{section}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_draws_the_services_answers_and_stands_alone() {
    let app = example_app().await;
    let dir = tempfile_dir("report-html");
    let out = dir.join("report.html");
    let out_str = out.to_str().unwrap();
    let mut args = vec!["report", "html", "--out", out_str];
    args.extend(COHORT_FLAGS);
    let run = clvd(&app, &args).await;
    ok(&run);
    // The screenshot of docs/report.md is taken of this page: set the
    // variable to keep a copy.
    if let Ok(keep) = std::env::var("CLVD_TEST_REPORT_OUT") {
        std::fs::copy(&out, keep).expect("copy the page");
    }
    let page = std::fs::read_to_string(&out).expect("the page was written");
    let doc = parse(&page);

    // Nothing outside the page: no script, every src/href an anchor.
    for n in doc.descendants().filter(|n| n.is_element()) {
        assert!(!n.has_tag_name("script"), "a <script>");
        assert!(!n.has_tag_name("link"), "a <link>");
        for a in n.attributes() {
            if a.name() == "src" || a.name() == "href" {
                assert!(a.value().starts_with('#'), "{}={:?}", a.name(), a.value());
                let target = &a.value()[1..];
                assert!(
                    doc.descendants().any(|m| m.attribute("id") == Some(target)),
                    "{} points at no element",
                    a.value()
                );
            }
        }
    }
    assert!(
        !page.contains("url(") && !page.contains("@import"),
        "CSS fetches"
    );

    // The heatmap is the cohort report.
    let report = cohort_report(&app).await;
    let (partial, forecast) = check_heatmap(figure_svg(&doc, "retention-heatmap"), &report);
    assert!(
        partial > 0 && forecast > 0,
        "{partial} partial, {forecast} forecast cells"
    );
    figure_svg(&doc, "cumulative-revenue");

    // The calibration chart is EvaluateModel's answer with the page's
    // default holdout: 26 weeks up to the as-of.
    let holdout_end = instant(AS_OF);
    let calibration_end = prost_types::Timestamp {
        seconds: holdout_end.seconds - 26 * 7 * 86_400,
        nanos: holdout_end.nanos,
    };
    let evaluation = evaluation(&app, calibration_end, holdout_end).await;
    check_calibration(figure_svg(&doc, "calibration"), &evaluation);

    // The P(alive) matrix is the active model's, for a customer first seen
    // at the first cohort's start.
    let model = active_model(&app).await;
    let first = report.cohorts[0].period_start.unwrap();
    let t_days = (model.as_of.unwrap().seconds - first.seconds) as f64 / 86_400.0;
    check_alive(figure_svg(&doc, "p-alive"), &model, t_days);
    figure_svg(&doc, "expected-purchases");

    // The loyalty table is GetLoyaltySummary over the 90 days to the as-of.
    let loyalty = reports(&app)
        .await
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(prost_types::Timestamp {
                seconds: holdout_end.seconds - 90 * 86_400,
                nanos: holdout_end.nanos,
            }),
            end_time: Some(holdout_end),
        })
        .await
        .expect("GetLoyaltySummary")
        .into_inner();
    assert_eq!(
        table_row(&doc, "loyalty", "customers")[1],
        loyalty.customers.to_string()
    );
    assert_eq!(
        table_row(&doc, "loyalty", "active customers")[1],
        loyalty.active_customers.to_string()
    );

    // Segments and value tiers, by name and size.
    let segments = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .expect("GetSegmentReport")
        .into_inner();
    assert!(!segments.segments.is_empty());
    for row in segments.segments.iter().chain(&segments.value_tiers) {
        let cells = table_row(&doc, "segments", &row.name.replace('_', " "));
        assert_eq!(cells[1], row.customers.to_string(), "{}", row.name);
    }

    // The Pareto curve: from (0, 0) to where the equal-shares diagonal
    // ends (100%, 100%), through GetSegmentReport's points, with the
    // top-20% reading interpolated here from those points.
    check_pareto(figure_svg(&doc, "pareto"), &segments);

    // The customers at risk, in the service's order.
    let at_risk = clvd::api::pb::scoring_service_client::ScoringServiceClient::new(
        channel(&app.endpoint()).await.unwrap(),
    )
    .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
        page_size: 20,
        ..Default::default()
    })
    .await
    .expect("ListAtRiskCustomers")
    .into_inner();
    assert!(!at_risk.customers.is_empty());
    let section = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("at-risk"))
        .unwrap();
    let ids: Vec<String> = section
        .descendants()
        .filter(|n| n.has_tag_name("tr"))
        .filter_map(|tr| tr.children().find(|c| c.has_tag_name("td")))
        .map(|td| td.text().unwrap_or("").to_owned())
        .collect();
    let want: Vec<String> = at_risk
        .customers
        .iter()
        .map(|c| c.customer_id.clone())
        .collect();
    assert_eq!(ids, want);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_cohorts_svg_writes_the_heatmap_alone() {
    let app = example_app().await;
    let dir = tempfile_dir("report-svg");
    let out = dir.join("cohorts.svg");
    let mut args = vec!["report", "cohorts"];
    args.extend(COHORT_FLAGS);
    args.extend(["--svg", out.to_str().unwrap()]);
    let text = drawn(&app, &args).await;
    let doc = parse(&text);
    let root = doc.root_element();
    assert!(root.has_tag_name("svg"), "{:?}", root.tag_name());
    let report = cohort_report(&app).await;
    let (partial, forecast) = check_heatmap(root, &report);
    assert!(
        partial > 0 && forecast > 0,
        "{partial} partial, {forecast} forecast cells"
    );

    // The revenue lines, one per cohort, named in the legend.
    let lines = dir.join("revenue.svg");
    let mut args = vec!["report", "cohorts"];
    args.extend(COHORT_FLAGS);
    args.extend(["--svg", lines.to_str().unwrap(), "--chart", "revenue"]);
    let text = drawn(&app, &args).await;
    let doc = parse(&text);
    let labels: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect();
    for c in &report.cohorts {
        assert!(
            labels.contains(&c.period_label),
            "{} in the legend",
            c.period_label
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_svg_writes_the_calibration_chart_alone() {
    let app = example_app().await;
    let dir = tempfile_dir("evaluate-svg");
    let out = dir.join("calibration.svg");
    let text = drawn(
        &app,
        &[
            "evaluate",
            "--calibration-end",
            "2026-04-30",
            "--holdout-end",
            AS_OF,
            "--svg",
            out.to_str().unwrap(),
        ],
    )
    .await;
    let evaluation = evaluation(&app, instant("2026-04-30"), instant(AS_OF)).await;
    let doc = parse(&text);
    assert!(doc.root_element().has_tag_name("svg"));
    check_calibration(doc.root_element(), &evaluation);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_name_the_flag_and_write_nothing() {
    let app = spawn_app().await;
    let dir = tempfile_dir("report-bad");
    let out = dir.join("report.html");
    let run = clvd(
        &app,
        &[
            "report",
            "html",
            "--out",
            out.to_str().unwrap(),
            "--first-cohort",
            FIRST,
            "--at-risk",
            "0",
        ],
    )
    .await;
    refused(&run, "--at-risk");
    assert!(!out.exists());
    // No data, no model: the cohort report still answers, the sections
    // that need a model say why, and the page is written.
    let run = clvd(
        &app,
        &[
            "report",
            "html",
            "--out",
            out.to_str().unwrap(),
            "--first-cohort",
            FIRST,
            "--as-of",
            AS_OF,
            "--no-evaluation",
        ],
    )
    .await;
    ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("the model section is left out"), "{stderr}");
    let page = std::fs::read_to_string(&out).unwrap();
    parse(&page);
    assert!(
        page.contains("No model in this report"),
        "the section says why"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A fresh directory under the system's temporary one.
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("clvd-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Path::new(&dir).is_dir());
    dir
}

/// `-o/--format svg`: each command that draws a figure prints it alone, to
/// --out FILE or standard output, and it is drawn from the API's answer;
/// `--output svg` and `--format svg` are the same flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_svg_draws_each_commands_figure_from_the_api() {
    let app = example_app().await;
    let dir = tempfile_dir("format-svg");

    // The heatmap to a file with --format svg --out.
    let heat = dir.join("heat.svg");
    let mut args = vec!["report", "cohorts"];
    args.extend(COHORT_FLAGS);
    args.extend(["--format", "svg", "--out", heat.to_str().unwrap()]);
    let text = drawn(&app, &args).await;
    let report = cohort_report(&app).await;
    check_heatmap(parse(&text).root_element(), &report);

    // The revenue lines on standard output with --output svg.
    let mut args = vec!["report", "cohorts"];
    args.extend(COHORT_FLAGS);
    args.extend(["--output", "svg", "--chart", "revenue"]);
    let text = drawn(&app, &args).await;
    let doc = parse(&text);
    let labels: Vec<String> = texts(doc.root_element()).into_iter().map(|t| t.0).collect();
    for c in &report.cohorts {
        assert!(labels.contains(&c.period_label), "{}", c.period_label);
    }

    // The Pareto curve of `report segments`.
    let text = drawn(&app, &["report", "segments", "-o", "svg"]).await;
    let segments = reports(&app)
        .await
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .expect("GetSegmentReport")
        .into_inner();
    check_pareto(parse(&text).root_element(), &segments);

    // The matrices of `model`, for a customer first seen --age-days before
    // the model's as-of; expected purchases over --horizon-days.
    let model = active_model(&app).await;
    let text = drawn(&app, &["model", "--format", "svg", "--age-days", "400"]).await;
    check_matrix(
        parse(&text).root_element(),
        &model,
        400.0,
        alive::Measure::Alive,
        0.0,
    );
    let expected = dir.join("expected.svg");
    let text = drawn(
        &app,
        &[
            "model",
            "--format",
            "svg",
            "--chart",
            "expected",
            "--horizon-days",
            "60",
            "--out",
            expected.to_str().unwrap(),
        ],
    )
    .await;
    check_matrix(
        parse(&text).root_element(),
        &model,
        365.0,
        alive::Measure::Expected,
        60.0,
    );

    // The calibration chart of `evaluate`.
    let text = drawn(
        &app,
        &[
            "evaluate",
            "--calibration-end",
            "2026-04-30",
            "--holdout-end",
            AS_OF,
            "--format",
            "svg",
        ],
    )
    .await;
    let evaluation = evaluation(&app, instant("2026-04-30"), instant(AS_OF)).await;
    check_calibration(parse(&text).root_element(), &evaluation);
    std::fs::remove_dir_all(&dir).ok();
}

/// Commands that draw no figure refuse `svg` naming the flag, before
/// calling the server (a fit asked for as SVG fits nothing); --out without
/// svg is refused naming --out and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_svg_is_refused_where_there_is_no_figure() {
    let app = spawn_app().await;
    let dir = tempfile_dir("format-svg-refused");
    ok(&clvd(&app, &["import", DATA, "--quiet", "-o", "json"]).await);
    for args in [
        &["fit", "--as-of", AS_OF, "--format", "svg"][..],
        &["models", "-o", "svg"],
        &[
            "report", "loyalty", "--start", FIRST, "--end", AS_OF, "--output", "svg",
        ],
        &["at-risk", "--format", "svg"],
    ] {
        let run = clvd(&app, args).await;
        refused(&run, "--format svg");
        refused(&run, "draws no figure");
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    // The fit was never asked for: no model version exists.
    let models: i64 = app.count("SELECT count(*) FROM models").await;
    assert_eq!(models, 0);

    let out = dir.join("never.svg");
    let run = clvd(
        &app,
        &["report", "segments", "--out", out.to_str().unwrap()],
    )
    .await;
    refused(&run, "--out FILE writes a figure");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// --horizon-months and --discount-rate: the expected-purchases matrix
/// covers the horizon, and the at-risk table's customers are re-scored
/// with exactly BatchGetCustomerValues' answers for them; without the
/// options the table has no re-scored columns. Bad values name the flag
/// and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horizon_and_discount_rate_reach_the_value_figures() {
    let app = example_app().await;
    let dir = tempfile_dir("report-horizon");
    let out = dir.join("report.html");
    let page = |extra: &'static [&'static str]| {
        let mut args = vec![
            "report",
            "html",
            "--out",
            out.to_str().unwrap(),
            "--first-cohort",
            FIRST,
            "--as-of",
            AS_OF,
            "--no-evaluation",
        ];
        args.extend(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run_page = |extra: &'static [&'static str]| {
        let args = page(extra);
        let app = &app;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            clvd(app, &refs).await
        }
    };

    ok(&run_page(&["--horizon-months", "6", "--discount-rate", "0.2"]).await);
    let text = std::fs::read_to_string(&out).expect("the page was written");
    let doc = parse(&text);
    let model = active_model(&app).await;
    let report = cohort_report(&app).await;
    let first = report.cohorts[0].period_start.unwrap();
    let t_days = (model.as_of.unwrap().seconds - first.seconds) as f64 / 86_400.0;
    // Six model months of 30 days.
    check_matrix(
        figure_svg(&doc, "expected-purchases"),
        &model,
        t_days,
        alive::Measure::Expected,
        180.0,
    );

    let mut scoring = clvd::api::pb::scoring_service_client::ScoringServiceClient::new(
        channel(&app.endpoint()).await.unwrap(),
    );
    let at_risk = scoring
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
            page_size: 20,
            ..Default::default()
        })
        .await
        .expect("ListAtRiskCustomers")
        .into_inner();
    assert!(!at_risk.customers.is_empty());
    let ids: Vec<String> = at_risk
        .customers
        .iter()
        .map(|c| c.customer_id.clone())
        .collect();
    let values = scoring
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: ids.clone(),
            horizon_months: Some(6),
            annual_discount_rate: Some(0.2),
            as_of: Some(instant(AS_OF)),
            ..Default::default()
        })
        .await
        .expect("BatchGetCustomerValues")
        .into_inner();
    let money = |m: &Option<pb::Money>| {
        let m = m.as_ref().expect("money");
        let nanos = i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos);
        assert!(nanos >= 0, "{m:?}");
        let cents = (nanos + 5_000_000) / 10_000_000;
        format!("{}.{:02} {}", cents / 100, cents % 100, m.currency_code)
    };
    let mut changed = 0;
    for (listed, v) in at_risk.customers.iter().zip(&values.values) {
        assert_eq!(listed.customer_id, v.customer_id);
        let cells = table_row(&doc, "at-risk", &v.customer_id);
        assert_eq!(cells.len(), 9, "{cells:?}");
        assert_eq!(cells[7], money(&v.predicted_value), "{}", v.customer_id);
        let churn = v.churn_risk.expect("scored");
        let predicted = {
            let m = v.predicted_value.as_ref().unwrap();
            m.units as f64 + f64::from(m.nanos) / 1e9
        };
        // Value at risk: churn risk × predicted value, as the service's.
        let want = format!("{:.2} USD", churn * predicted);
        assert_eq!(cells[8], want, "{}", v.customer_id);
        // The fit's scores (12 months at 10 %) are still shown beside them.
        assert_eq!(cells[3], money(&listed.predicted_value));
        if cells[3] != cells[7] {
            changed += 1;
        }
    }
    assert!(changed > 0, "six months at 20 % change the values");
    assert!(
        text.contains("over 6 model months (of 30 days) at a 20 % annual discount rate"),
        "the table says which horizon and rate"
    );
    assert!(
        text.contains("over the next 12 model months (of 30 days) at a 10 % annual discount rate, as scored at the fit"),
        "the fit's figures say which horizon and rate they show"
    );

    // Without the options: no re-scored columns, the matrix's 90 days.
    ok(&run_page(&[]).await);
    let text = std::fs::read_to_string(&out).unwrap();
    let doc = parse(&text);
    assert_eq!(table_row(&doc, "at-risk", &ids[0]).len(), 7);
    check_matrix(
        figure_svg(&doc, "expected-purchases"),
        &model,
        t_days,
        alive::Measure::Expected,
        90.0,
    );

    std::fs::remove_file(&out).unwrap();
    for (bad, flag) in [
        (&["--discount-rate", "1"][..], "--discount-rate"),
        (&["--discount-rate=-0.1"], "--discount-rate"),
        (&["--horizon-months", "0"], "--horizon-months"),
        (&["--horizon-months", "121"], "--horizon-months"),
    ] {
        let bad: &'static [&'static str] = bad;
        refused(&run_page(bad).await, flag);
        assert!(!out.exists(), "{bad:?} wrote a page");
    }
    let run = run_page(&["--horizon-months", "6", "--horizon-days", "30"]).await;
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--horizon-days"));
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}
