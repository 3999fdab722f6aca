//! The import's floor: what PostgreSQL alone spends per row to store what
//! ImportTransactions stores, written the cheapest way SQL offers.
//!
//! The bench's rows are loaded (unmeasured) into a staging table, then
//! written batch by batch, one database transaction per batch, by four
//! set-based statements and nothing else: the transactions, the
//! (customer, day) rows grouped from them, the customers' summaries grouped
//! from them, and the report queue's entries. No lookup of stored keys, no
//! lock taken ahead, no summary read, no refunds, no exact rules (a
//! customer's occasions across batches are over-counted): strictly less
//! work than any import that keeps every guarantee. Its PostgreSQL CPU per
//! row, against COPY's, bounds the ratio ImportTransactions / COPY on this
//! machine whatever clvd does.

use std::time::Duration;

use clvd::embedded_postgres::EmbeddedPostgres;
use sqlx::PgPool;

use crate::cpu::CpuClock;

/// PostgreSQL's CPU seconds per row for the floor, as the schema stands
/// and without `customer_days_by_day` (the loyalty report's index on the
/// day rows).
pub struct Floor {
    pub per_row: f64,
    pub per_row_without_by_day: f64,
}

/// Measures [`Floor`] over the `rows` rows of `csv` (the bench's COPY
/// file) in batches of `batch`, one stream, each from empty ingest tables.
/// Leaves the ingest tables empty and the schema as it found it.
pub async fn measure(
    pg: &EmbeddedPostgres,
    pool: &PgPool,
    clock: &CpuClock,
    csv: &std::path::Path,
    rows: usize,
    batch: usize,
) -> anyhow::Result<Floor> {
    stage(pg, pool, csv).await?;
    let per_row = write(pool, clock, rows, batch).await? / rows as f64;
    sqlx::query("DROP INDEX customer_days_by_day")
        .execute(pool)
        .await?;
    let per_row_without_by_day = write(pool, clock, rows, batch).await? / rows as f64;
    sqlx::query(
        "CREATE INDEX customer_days_by_day ON customer_days (day) INCLUDE (customer_id, net_nanos)",
    )
    .execute(pool)
    .await?;
    sqlx::query("DROP TABLE floor_rows").execute(pool).await?;
    Ok(Floor {
        per_row,
        per_row_without_by_day,
    })
}

/// Loads the rows into `floor_rows`, numbered in file order.
async fn stage(pg: &EmbeddedPostgres, pool: &PgPool, csv: &std::path::Path) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS floor_rows;
         CREATE UNLOGGED TABLE floor_rows (
             n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             customer_id text, transaction_id text, kind smallint,
             occurred_at timestamptz, occasion_day date, amount_nanos bigint)",
    )
    .execute(pool)
    .await?;
    crate::copy_into(pg, csv, "floor_rows")?;
    sqlx::query("VACUUM ANALYZE floor_rows")
        .execute(pool)
        .await?;
    Ok(())
}

/// PostgreSQL's CPU seconds for writing the staged rows from empty ingest
/// tables, which it empties again afterwards.
async fn write(pool: &PgPool, clock: &CpuClock, rows: usize, batch: usize) -> anyhow::Result<f64> {
    const EMPTY: &str = "TRUNCATE transactions, customer_days, customers, report_dirty";
    sqlx::query(EMPTY).execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    // One connection, as COPY has one backend.
    let mut conn = pool.acquire().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = clock.now();
    let batch = batch.max(1);
    for lo in (1..=rows).step_by(batch) {
        let hi = (lo + batch - 1).min(rows);
        let range = format!("FROM floor_rows WHERE n BETWEEN {lo} AND {hi}");
        sqlx::raw_sql(&format!(
            "BEGIN;
             INSERT INTO transactions (customer_id, transaction_id, kind, occurred_at, occasion_day, amount_nanos)
             SELECT customer_id, transaction_id, kind, occurred_at, occasion_day, amount_nanos {range};
             INSERT INTO customer_days AS d (customer_id, day, purchases, net_nanos, first_purchase_at, last_purchase_at)
             SELECT customer_id, occasion_day, count(*), sum(amount_nanos), min(occurred_at), max(occurred_at)
               {range} GROUP BY 1, 2
             ON CONFLICT (customer_id, day) DO UPDATE SET
               purchases = d.purchases + excluded.purchases,
               net_nanos = d.net_nanos + excluded.net_nanos,
               first_purchase_at = least(d.first_purchase_at, excluded.first_purchase_at),
               last_purchase_at = greatest(d.last_purchase_at, excluded.last_purchase_at);
             INSERT INTO customers AS c (customer_id, first_purchase_day, last_purchase_day,
               first_purchase_at, last_purchase_at, purchase_occasions, purchase_count, net_revenue_nanos)
             SELECT customer_id, min(occasion_day), max(occasion_day), min(occurred_at), max(occurred_at),
               count(DISTINCT occasion_day), count(*), sum(amount_nanos)
               {range} GROUP BY 1
             ON CONFLICT (customer_id) DO UPDATE SET
               first_purchase_day = least(c.first_purchase_day, excluded.first_purchase_day),
               last_purchase_day = greatest(c.last_purchase_day, excluded.last_purchase_day),
               first_purchase_at = least(c.first_purchase_at, excluded.first_purchase_at),
               last_purchase_at = greatest(c.last_purchase_at, excluded.last_purchase_at),
               purchase_occasions = c.purchase_occasions + excluded.purchase_occasions,
               purchase_count = c.purchase_count + excluded.purchase_count,
               net_revenue_nanos = c.net_revenue_nanos + excluded.net_revenue_nanos,
               updated_at = now();
             INSERT INTO report_dirty (customer_id) SELECT DISTINCT customer_id {range};
             COMMIT"
        ))
        .execute(&mut *conn)
        .await?;
    }
    // The backend is still connected: the clock counts it as live.
    let used = (clock.now() - t0).postgres;
    drop(conn);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        stored as usize == rows,
        "the floor stored {stored} of {rows} rows"
    );
    sqlx::query(EMPTY).execute(pool).await?;
    Ok(used)
}
