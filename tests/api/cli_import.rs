//! `clvd import`: the real binary against the real server. Stored rows are
//! read back from the database and compared with what the file says.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    process::Output,
};

use chrono::{NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Runs `clvd import` (JSON summary) against `app`.
async fn import(app: &TestApp, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clvd"))
        .arg("import")
        .args(["--server", &app.endpoint(), "-o", "json", "--quiet"])
        .args(args)
        .output()
        .await
        .expect("run clvd import")
}

/// The summary row: (rows, recorded, duplicates, rejected).
fn summary(out: &Output) -> (u64, u64, u64, u64) {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON summary ({e}): stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let n = |k: &str| v[0][k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("rows"), n("recorded"), n("duplicates"), n("rejected"))
}

/// (line, column, reason, row) of each entry of a rejects file.
fn rejects(path: &Path) -> Vec<(u64, String, String, String)> {
    let mut r = csv::Reader::from_path(path).expect("rejects file");
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["file", "line", "column", "reason", "row"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[1].parse().unwrap(),
                rec[2].to_owned(),
                rec[3].to_owned(),
                rec[4].to_owned(),
            )
        })
        .collect()
}

/// Stored transactions as (customer, id, kind, amount nanos, epoch
/// seconds, refunded id, cost nanos).
type Stored = (String, String, i16, i64, i64, Option<String>, Option<i64>);

async fn stored(app: &TestApp) -> BTreeSet<Stored> {
    sqlx::query_as::<_, Stored>(
        "SELECT customer_id, transaction_id, kind, amount_nanos, \
         extract(epoch FROM occurred_at)::bigint, refunded_transaction_id, cost_nanos \
         FROM transactions",
    )
    .fetch_all(&app.pool)
    .await
    .expect("stored transactions")
    .into_iter()
    .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clvd-cli-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn day(y: i32, m: u32, d: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

/// A good row of the file and what it must store (the line is its place).
struct Good {
    customer: &'static str,
    refund_of_line: Option<u64>,
    nanos: i64,
    seconds: i64,
    cost: Option<i64>,
}

#[tokio::test]
async fn good_rows_are_stored_bad_rows_rejected_with_line_column_reason_and_a_rerun_adds_nothing() {
    let app = spawn_app().await;
    let dir = temp_dir("mixed");
    let file = dir.join("history.csv");
    let t = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp();
    // (row text, expectation): Ok(good row) or Err(column of the problem).
    // Line 1 is the header, so the row at index i is on line i + 2.
    let rows: Vec<(&str, Result<Good, &str>)> = vec![
        (
            "ann,2025-03-01T10:00:00Z,12.34,purchase,,",
            Ok(Good {
                customer: "ann",
                refund_of_line: None,
                nanos: 12_340_000_000,
                seconds: t(2025, 3, 1, 10),
                cost: None,
            }),
        ),
        (
            "ann,2025-04-02,100,,,40.5",
            Ok(Good {
                customer: "ann",
                refund_of_line: None,
                nanos: 100_000_000_000,
                seconds: day(2025, 4, 2),
                cost: Some(40_500_000_000),
            }),
        ),
        (
            "bob,2025-05-03 08:00:00,0.000000001,PURCHASE,,",
            Ok(Good {
                customer: "bob",
                refund_of_line: None,
                nanos: 1,
                seconds: t(2025, 5, 3, 8),
                cost: None,
            }),
        ),
        (
            "ann,2025-06-01,2.34,refund,line:2,",
            Ok(Good {
                customer: "ann",
                refund_of_line: Some(2),
                nanos: 2_340_000_000,
                seconds: day(2025, 6, 1),
                cost: None,
            }),
        ),
        (
            "bob,2025-07-01,7,purchase,,",
            Ok(Good {
                customer: "bob",
                refund_of_line: None,
                nanos: 7_000_000_000,
                seconds: day(2025, 7, 1),
                cost: None,
            }),
        ),
        (
            "bob,2025-07-09,1000000000,purchase,,",
            Ok(Good {
                customer: "bob",
                refund_of_line: None,
                nanos: 1_000_000_000_000_000_000,
                seconds: day(2025, 7, 9),
                cost: None,
            }),
        ),
        (
            "ann,2025-08-01,50,refund,line:3,",
            Ok(Good {
                customer: "ann",
                refund_of_line: Some(3),
                nanos: 50_000_000_000,
                seconds: day(2025, 8, 1),
                cost: None,
            }),
        ),
        // One row per kind of local error.
        (",2025-03-01,1,purchase,,", Err("customer_id")),
        ("c\u{200B}d,2025-03-01,1,purchase,,", Err("customer_id")),
        ("cy,31/01/2025,1,purchase,,", Err("occurred_at")),
        ("cy,2999-01-01,1,purchase,,", Err("occurred_at")),
        ("cy,2025-03-01,1.0000000001,purchase,,", Err("amount")),
        ("cy,2025-03-01,1e3,purchase,,", Err("amount")),
        ("cy,2025-03-01,-5.00,purchase,,", Err("amount")),
        (
            "cy,2025-03-01,1000000000.000000001,purchase,,",
            Err("amount"),
        ),
        ("cy,2025-03-01,1,gift,,", Err("kind")),
        ("cy,2025-03-01,1,refund,,", Err("refunded_transaction_id")),
        ("cy,2025-03-01,0,refund,line:2,", Err("amount")),
        (
            "cy,2025-03-01,1,purchase,line:2,",
            Err("refunded_transaction_id"),
        ),
        ("cy,2025-03-01,1,purchase,,-1", Err("cost")),
        ("cy,2025-03-01,1,purchase", Err("")),
        // A refund naming a purchase of another customer, a later line,
        // and a line that was rejected.
        (
            "bob,2025-09-01,1,refund,line:2,",
            Err("refunded_transaction_id"),
        ),
        (
            "ann,2025-09-01,1,refund,line:40,",
            Err("refunded_transaction_id"),
        ),
        (
            "cy,2025-09-01,1,refund,line:13,",
            Err("refunded_transaction_id"),
        ),
    ];
    let mut text =
        String::from("customer_id,occurred_at,amount,kind,refunded_transaction_id,cost\n");
    for (row, _) in &rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&file, &text).unwrap();
    let identity = &hex::encode(Sha256::digest(text.as_bytes()))[..16];
    let id = |line: u64| format!("{identity}:{line}");

    let expected: BTreeSet<Stored> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (_, e))| e.as_ref().ok().map(|g| (i as u64 + 2, g)))
        .map(|(line, g)| {
            (
                g.customer.to_owned(),
                id(line),
                if g.refund_of_line.is_some() { 2 } else { 1 },
                g.nanos,
                g.seconds,
                g.refund_of_line.map(id),
                g.cost,
            )
        })
        .collect();
    let bad: BTreeMap<u64, &str> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (_, e))| e.as_ref().err().map(|c| (i as u64 + 2, *c)))
        .collect();

    let good = expected.len() as u64;
    let rejected = bad.len() as u64;
    let rejects_path = dir.join("history.csv.rejects.csv");

    // A dry run checks and lists the same rejects, and sends nothing.
    let dry = import(&app, &["--dry-run", file.to_str().unwrap()]).await;
    assert_eq!(
        dry.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(summary(&dry), (rows.len() as u64, 0, 0, rejected));
    assert_eq!(app.transactions_stored().await, 0);
    let dry_listed = rejects(&rejects_path);

    let out = import(&app, &[file.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out), (rows.len() as u64, good, 0, rejected));
    assert_eq!(stored(&app).await, expected, "exactly the good rows");

    let listed = rejects(&rejects_path);
    assert_eq!(listed, dry_listed);
    assert_eq!(
        listed
            .iter()
            .map(|(l, c, _, _)| (*l, c.as_str()))
            .collect::<BTreeMap<_, _>>(),
        bad,
        "{listed:#?}"
    );
    for (line, _, reason, row) in &listed {
        assert!(!reason.is_empty(), "line {line}");
        // The row as it was in the file.
        let original = rows[*line as usize - 2].0;
        assert_eq!(row, original, "line {line}");
    }
    let reason = |line: u64| listed.iter().find(|r| r.0 == line).unwrap().2.clone();
    assert!(reason(11).contains("RFC 3339"), "{}", reason(11));
    assert!(reason(12).contains("future"), "{}", reason(12));
    assert!(reason(13).contains("9 decimals"), "{}", reason(13));
    assert!(
        reason(15).contains("purchase must be >= 0"),
        "{}",
        reason(15)
    );
    assert!(
        reason(16).contains("at most 1000000000 units"),
        "{}",
        reason(16)
    );
    assert!(reason(22).contains("fields"), "{}", reason(22));

    // A rerun: every good row a duplicate, the same rejects, same exit.
    let again = import(&app, &[file.to_str().unwrap()]).await;
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(summary(&again), (rows.len() as u64, 0, good, rejected));
    assert_eq!(stored(&app).await, expected, "nothing new");
    assert_eq!(rejects(&rejects_path), listed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn gzip_mapped_columns_and_another_delimiter_are_read_and_a_clean_file_exits_zero() {
    let app = spawn_app().await;
    let dir = temp_dir("gzip");
    let text = "when;client;value;order\n\
                2025-01-05T10:00:00Z;x1;10.50;o1\n\
                2025-01-06T10:00:00Z;x2;3;o2\n\
                2025-02-01T10:00:00Z;x1;0.25;o3\n";
    // Named .csv: gzip is recognised by its content.
    let file = dir.join("orders.csv");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let args = [
        "--delimiter",
        ";",
        "--customer-column",
        "client",
        "--transaction-column",
        "order",
        "--time-column",
        "when",
        "--amount-column",
        "value",
        file.to_str().unwrap(),
    ];
    let out = import(&app, &args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out), (3, 3, 0, 0));
    let t = |m, d| {
        Utc.with_ymd_and_hms(2025, m, d, 10, 0, 0)
            .unwrap()
            .timestamp()
    };
    let want: BTreeSet<Stored> = [
        ("x1", "o1", 10_500_000_000, t(1, 5)),
        ("x2", "o2", 3_000_000_000, t(1, 6)),
        ("x1", "o3", 250_000_000, t(2, 1)),
    ]
    .into_iter()
    .map(|(c, i, n, s)| (c.into(), i.into(), 1, n, s, None, None))
    .collect();
    assert_eq!(stored(&app).await, want);
    assert!(!dir.join("orders.csv.rejects.csv").exists());

    // A flag naming a column the header lacks: an error, nothing sent.
    let mut with_cost = args.to_vec();
    with_cost.splice(0..0, ["--cost-column", "margin"]);
    let out = import(&app, &with_cost).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cost-column") && stderr.contains("margin"),
        "{stderr}"
    );
    assert_eq!(app.transactions_stored().await, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rows_the_server_refuses_are_rejected_with_its_reason_and_the_others_stored() {
    let app = spawn_app().await;
    // Stored before, with other content than the file's row for it.
    app.ingest()
        .await
        .record_transaction(record(purchase("k", "taken", at(2025, 1, 1, 9, 0), 500)))
        .await
        .unwrap();
    let dir = temp_dir("server");
    let file = dir.join("f.csv");
    std::fs::write(
        &file,
        "customer_id,transaction_id,occurred_at,amount,kind,refunded_transaction_id\n\
         k,p1,2025-02-01,10,purchase,\n\
         k,r1,2025-02-02,1,refund,nowhere\n\
         k,taken,2025-01-01T09:00:00Z,6,purchase,\n\
         k,p2,2025-02-03,20,purchase,\n\
         k,r2,2025-02-04,25,refund,p2\n\
         k,r3,2025-02-05,5,refund,p1\n",
    )
    .unwrap();
    let out = import(&app, &["--batch-size", "10", file.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out), (6, 3, 0, 3));
    let ids: BTreeSet<String> = stored(&app).await.into_iter().map(|s| s.1).collect();
    assert_eq!(ids, ["p1", "p2", "r3", "taken"].map(String::from).into());
    let listed = rejects(&dir.join("f.csv.rejects.csv"));
    assert_eq!(
        listed
            .iter()
            .map(|(l, c, _, _)| (*l, c.as_str()))
            .collect::<Vec<_>>(),
        [(3, "refunded_transaction_id"), (4, ""), (6, "amount")]
    );
    assert!(
        listed[0].2.contains("names no recorded purchase"),
        "{:?}",
        listed[0]
    );
    assert!(
        listed[1].2.contains("already recorded with other content"),
        "{:?}",
        listed[1]
    );
    assert_eq!(listed[1].3, "k,taken,2025-01-01T09:00:00Z,6,purchase,");
    assert!(!listed[2].2.is_empty());

    let again = import(&app, &["--batch-size", "10", file.to_str().unwrap()]).await;
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(summary(&again), (6, 0, 3, 3));
    assert_eq!(rejects(&dir.join("f.csv.rejects.csv")), listed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn killed_halfway_and_rerun_the_totals_are_exact() {
    let app = spawn_app().await;
    let dir = temp_dir("kill");
    let file = dir.join("big.csv");
    let rows = 50_000u64;
    let mut text = String::from(
        "customer_id,transaction_id,occurred_at,amount,kind,refunded_transaction_id\n",
    );
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..rows {
        let customer = format!("c{}", i % 997);
        let when = day(2024, 1, 1) + (i as i64 % 600) * 86_400 + 3600;
        let time = chrono::DateTime::from_timestamp(when, 0)
            .unwrap()
            .to_rfc3339();
        // Every tenth row refunds a part of the previous purchase of the
        // same customer (997 rows earlier).
        if i % 10 == 9 && i >= 997 {
            text.push_str(&format!(
                "{customer},t{i},{time},0.01,refund,t{}\n",
                i - 997
            ));
            *net.entry(customer).or_default() -= 10_000_000;
        } else {
            let cents = 100 + (i % 5000) as i64;
            text.push_str(&format!(
                "{customer},t{i},{time},{}.{:02},,\n",
                cents / 100,
                cents % 100
            ));
            *net.entry(customer).or_default() += cents * 10_000_000;
        }
    }
    std::fs::write(&file, &text).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clvd"))
        .arg("import")
        .args([
            "--server",
            &app.endpoint(),
            "--quiet",
            "--batch-size",
            "500",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once some batches are committed.
    loop {
        if app.transactions_stored().await > 0 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("clvd import ended ({status}) before any batch was stored");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // A batch the server was committing when the client died may still
    // land: wait until the count holds still.
    let mut partial = app.transactions_stored().await as u64;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = app.transactions_stored().await as u64;
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(
        partial > 0 && partial < rows,
        "killed halfway: {partial} stored"
    );

    let out = import(&app, &[file.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (read, recorded, duplicates, rejected) = summary(&out);
    assert_eq!((read, rejected), (rows, 0));
    assert_eq!(recorded + duplicates, rows);
    assert_eq!(
        recorded,
        rows - partial,
        "what the killed run stored is not recorded again"
    );
    assert_eq!(app.transactions_stored().await as u64, rows);
    let stored_net: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT customer_id, net_revenue_nanos::bigint FROM customers",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(stored_net, net);
    let _ = std::fs::remove_dir_all(&dir);
}
