//! The cohort report aggregates (`customer_periods`, `cohort_cells`), kept
//! current from the `report_dirty` queue that ingest appends to.
//!
//! One step takes a range of entries off the front of the queue (each
//! customer once, however often queued), recomputes those customers'
//! contributions from their per-day rollups in one set-based statement,
//! and writes only the difference from their stored ones (changed
//! `customer_periods` rows, one upsert per changed cell), in one
//! transaction under an advisory lock (one step at a time across
//! replicas, so the cells have a single writer). The recomputation reads `customers` and `customer_days`
//! in one statement, which sees every ingest batch of the customer either
//! whole or not at all; a batch that commits after the step's read queued
//! the customer again, so the next step picks it up.
//!
//! Money sums stay `numeric` from the rollups to the cells (no cast to
//! bigint), so no total can make a step fail: a step that failed would
//! fail again on every cycle and hold every cohort report back.

use sqlx::{Postgres, Transaction as PgTx};

use super::{Storage, StorageError};
use crate::domain::CustomerId;

/// The advisory lock key of aggregation steps ("clvd-agg").
const AGGREGATE_LOCK_KEY: i64 = 0x636c_7664_2d61_6767;

/// `INSERT INTO cohort_cells` of one row per cell, adding to a stored cell
/// (the rows are `SELECT`ed after it).
macro_rules! add_to_cells {
    ($rows:literal) => {
        concat!(
            "INSERT INTO cohort_cells AS c (granularity, cohort, period, customers,
                                           repeat_customers, orders, net_nanos, cost_nanos,
                                           uncosted) ",
            $rows,
            " ON CONFLICT (granularity, cohort, period) DO UPDATE SET
                  customers = c.customers + excluded.customers,
                  repeat_customers = c.repeat_customers + excluded.repeat_customers,
                  orders = c.orders + excluded.orders,
                  net_nanos = c.net_nanos + excluded.net_nanos,
                  cost_nanos = c.cost_nanos + excluded.cost_nanos,
                  uncosted = c.uncosted + excluded.uncosted"
        )
    };
}

/// Subtracts the stored contributions of `customers` and forgets them.
const SUBTRACT: &str = concat!(
    "WITH old AS (
         DELETE FROM customer_periods WHERE customer_id = ANY($1)
         RETURNING granularity, cohort, period, repeat_customer, orders, net_nanos, cost_nanos,
                   uncosted
     ) ",
    add_to_cells!(
        "SELECT granularity, cohort, period, -count(*), -sum(repeat_customer), -sum(orders),
                -sum(net_nanos), -sum(cost_nanos), -sum(uncosted)
           FROM old GROUP BY granularity, cohort, period"
    )
);

/// Recomputes the contributions of `customers` from their rollups and
/// applies only the difference: `customer_periods` rows that changed are
/// updated, new ones inserted, vanished ones deleted, and each cell gets
/// one upsert of its net change (cells whose change sums to nothing are
/// left alone). A customer whose rollups did not change since their last
/// step (queued again by a batch that another step already counted)
/// writes nothing.
const APPLY_DIFF: &str = concat!(
    "WITH fresh AS (
         SELECT customer_id, granularity, period, cohort, sum(purchases)::int8 AS orders,
                sum(net_nanos) AS net_nanos, sum(cost_nanos) AS cost_nanos,
                sum(uncosted_purchases)::int8 AS uncosted,
                (max(occasions) >= 2 AND period = cohort)::int::int2 AS repeat_customer
           FROM (SELECT d.customer_id, g.granularity,
                        date_trunc(g.unit, d.day::timestamp)::date AS period,
                        date_trunc(g.unit, c.first_purchase_day::timestamp)::date AS cohort,
                        c.purchase_occasions AS occasions, d.purchases, d.net_nanos, d.cost_nanos,
                        d.uncosted_purchases
                   FROM customers c
                   JOIN customer_days d USING (customer_id)
                  CROSS JOIN (VALUES (1::int2, 'week'), (2::int2, 'month'), (3::int2, 'quarter'))
                        AS g(granularity, unit)
                  WHERE c.customer_id = ANY($1) AND c.purchase_occasions > 0) days
          GROUP BY customer_id, granularity, period, cohort
     ), old AS (
         SELECT customer_id, granularity, period, cohort, orders, net_nanos, cost_nanos,
                uncosted, repeat_customer
           FROM customer_periods WHERE customer_id = ANY($1)
     ), diff AS (
         SELECT customer_id, granularity, period,
                f.cohort AS new_cohort, f.orders AS new_orders, f.net_nanos AS new_net,
                f.cost_nanos AS new_cost, f.uncosted AS new_uncosted,
                f.repeat_customer AS new_repeat,
                o.cohort AS old_cohort, o.orders AS old_orders, o.net_nanos AS old_net,
                o.cost_nanos AS old_cost, o.uncosted AS old_uncosted,
                o.repeat_customer AS old_repeat
           FROM fresh f FULL JOIN old o USING (customer_id, granularity, period)
          WHERE (f.cohort, f.orders, f.net_nanos, f.cost_nanos, f.uncosted, f.repeat_customer)
                IS DISTINCT FROM
                (o.cohort, o.orders, o.net_nanos, o.cost_nanos, o.uncosted, o.repeat_customer)
     ), removed AS (
         DELETE FROM customer_periods p USING diff x
          WHERE x.new_cohort IS NULL AND p.customer_id = x.customer_id
            AND p.granularity = x.granularity AND p.period = x.period
     ), changed AS (
         UPDATE customer_periods p
            SET cohort = x.new_cohort, orders = x.new_orders, net_nanos = x.new_net,
                cost_nanos = x.new_cost, uncosted = x.new_uncosted, repeat_customer = x.new_repeat
           FROM diff x
          WHERE x.new_cohort IS NOT NULL AND x.old_cohort IS NOT NULL
            AND p.customer_id = x.customer_id AND p.granularity = x.granularity
            AND p.period = x.period
     ), added AS (
         INSERT INTO customer_periods (customer_id, granularity, period, cohort, orders, net_nanos,
                                       cost_nanos, uncosted, repeat_customer)
         SELECT customer_id, granularity, period, new_cohort, new_orders, new_net, new_cost,
                new_uncosted, new_repeat
           FROM diff WHERE old_cohort IS NULL
     ), deltas AS (
         SELECT granularity, new_cohort AS cohort, period, 1 AS customers,
                new_repeat AS repeat_customers, new_orders AS orders, new_net AS net_nanos,
                new_cost AS cost_nanos, new_uncosted AS uncosted
           FROM diff WHERE new_cohort IS NOT NULL
         UNION ALL
         SELECT granularity, old_cohort, period, -1, -old_repeat, -old_orders, -old_net,
                -old_cost, -old_uncosted
           FROM diff WHERE old_cohort IS NOT NULL
     ) ",
    add_to_cells!(
        "SELECT granularity, cohort, period, sum(customers), sum(repeat_customers), sum(orders),
                sum(net_nanos), sum(cost_nanos), sum(uncosted)
           FROM deltas GROUP BY granularity, cohort, period
         HAVING (sum(customers), sum(repeat_customers), sum(orders), sum(net_nanos),
                 sum(cost_nanos), sum(uncosted)) <> (0, 0, 0, 0, 0, 0)"
    )
);

/// Settings of a step's transaction, both measured (docs/benchmarks.md,
/// "Report aggregates"): memory for its sorts (at the default 4 MB a step
/// of 10,000 customers spills to disk), and sorted rather than hashed
/// grouping (a hashed group of numeric sums takes about 900 bytes per
/// customer and period, and the step ran 30% slower with it).
const STEP_SETTINGS: [&str; 2] = [
    "SET LOCAL work_mem = '128MB'",
    "SET LOCAL enable_hashagg = off",
];

async fn lock(tx: &mut PgTx<'_, Postgres>) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AGGREGATE_LOCK_KEY)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A step's transaction: its memory setting, then the lock.
async fn begin_step(pool: &sqlx::PgPool) -> Result<PgTx<'static, Postgres>, StorageError> {
    let mut tx = pool.begin().await?;
    for setting in STEP_SETTINGS {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    lock(&mut tx).await?;
    Ok(tx)
}

/// Customers per recomputing statement: bounds a statement's sorts and
/// the arrays sent with it.
const CUSTOMERS_PER_STATEMENT: usize = 20_000;

/// Removes the queue entries at or before `bound` and brings their
/// customers up to date, each once, in sorted chunks; returns how many
/// customers.
///
/// The entries are removed by a range of `seq` (an index range scan; a
/// `seq IN (...)` list was planned as a scan of the whole queue). An entry
/// committed after the bound was read but at or before it is removed too,
/// which is safe: the recomputation runs after the removal, in later
/// statements, so it sees that batch.
async fn take_and_apply(tx: &mut PgTx<'_, Postgres>, bound: i64) -> Result<usize, StorageError> {
    let customers: Vec<String> = sqlx::query_scalar(
        "WITH taken AS (DELETE FROM report_dirty WHERE seq <= $1 RETURNING customer_id)
         SELECT DISTINCT customer_id FROM taken ORDER BY customer_id",
    )
    .bind(bound)
    .fetch_all(&mut **tx)
    .await?;
    for chunk in customers.chunks(CUSTOMERS_PER_STATEMENT) {
        sqlx::query(APPLY_DIFF)
            .bind(chunk)
            .execute(&mut **tx)
            .await?;
    }
    Ok(customers.len())
}

impl Storage {
    /// The newest position in the queue now (`None`: it is empty).
    /// Everything committed so far is at or before it.
    pub async fn aggregate_queue_end(&self) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::query_scalar("SELECT max(seq) FROM report_dirty")
            .fetch_one(&self.pool)
            .await?)
    }

    /// How many entries the queue holds now, at most (the span of its
    /// positions, read from the index at both ends: no count of a long
    /// queue); 0 when it is empty.
    pub async fn aggregate_backlog(&self) -> Result<i64, StorageError> {
        let (front, end): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT min(seq), max(seq) FROM report_dirty")
                .fetch_one(&self.pool)
                .await?;
        Ok(match (front, end) {
            (Some(front), Some(end)) => end - front + 1,
            _ => 0,
        })
    }

    /// Takes up to `max_entries` entries off the front of the queue (only
    /// entries at or before `up_to` when given) and brings their customers'
    /// contributions up to date; returns how many distinct customers it
    /// did (0: nothing was left to take).
    pub async fn aggregate_step(
        &self,
        max_entries: i64,
        up_to: Option<i64>,
    ) -> Result<usize, StorageError> {
        let mut tx = begin_step(&self.pool).await?;
        let bound: Option<i64> = sqlx::query_scalar(
            "SELECT max(seq) FROM (SELECT seq FROM report_dirty
                                     WHERE $2::int8 IS NULL OR seq <= $2
                                     ORDER BY seq LIMIT $1) front",
        )
        .bind(max_entries)
        .bind(up_to)
        .fetch_one(&mut *tx)
        .await?;
        let done = match bound {
            Some(bound) => take_and_apply(&mut tx, bound).await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(done)
    }

    /// Brings every customer queued at or before `up_to` up to date, in
    /// one transaction: each customer once, however many batches queued
    /// it (a bulk import queues a customer once per batch it appears in);
    /// returns how many customers it did.
    pub async fn aggregate_through(&self, up_to: i64) -> Result<usize, StorageError> {
        let mut tx = begin_step(&self.pool).await?;
        let done = take_and_apply(&mut tx, up_to).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Removes an erased customer's contribution, within the erasure's
    /// transaction (under the step's lock).
    pub(super) async fn forget_contribution(
        tx: &mut PgTx<'_, Postgres>,
        id: &CustomerId,
    ) -> Result<(), StorageError> {
        lock(tx).await?;
        sqlx::query(SUBTRACT)
            .bind([id.as_str()].as_slice())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
