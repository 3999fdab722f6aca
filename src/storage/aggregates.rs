//! The cohort report aggregates (`customer_periods`, `cohort_cells`), kept
//! current from the `report_dirty` queue that ingest appends to.
//!
//! One step takes customers off the front of the queue and, for each,
//! subtracts their stored contribution from the cells and adds the one
//! recomputed from their per-day rollups, in one transaction under an
//! advisory lock (one step at a time across replicas, so the cells have a
//! single writer). The recomputation reads `customers` and `customer_days`
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

/// Recomputes the contributions of `customers` from their rollups, stores
/// them and adds them to the cells.
const ADD: &str = concat!(
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
     ), stored AS (
         INSERT INTO customer_periods (customer_id, granularity, period, cohort, orders, net_nanos,
                                       cost_nanos, uncosted, repeat_customer)
         SELECT customer_id, granularity, period, cohort, orders, net_nanos, cost_nanos, uncosted,
                repeat_customer
           FROM fresh
     ) ",
    add_to_cells!(
        "SELECT granularity, cohort, period, count(*), sum(repeat_customer), sum(orders),
                sum(net_nanos), sum(cost_nanos), sum(uncosted)
           FROM fresh GROUP BY granularity, cohort, period"
    )
);

async fn lock(tx: &mut PgTx<'_, Postgres>) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AGGREGATE_LOCK_KEY)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Storage {
    /// The newest position in the queue now (`None`: it is empty).
    /// Everything committed so far is at or before it.
    pub async fn aggregate_queue_end(&self) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::query_scalar("SELECT max(seq) FROM report_dirty")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Brings up to `max_customers` queued customers' contributions up to
    /// date, taking only queue entries at or before `up_to` when given;
    /// returns how many customers it took off the queue (0: nothing was
    /// left to take).
    pub async fn aggregate_step(
        &self,
        max_customers: i64,
        up_to: Option<i64>,
    ) -> Result<usize, StorageError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let customers: Vec<String> = sqlx::query_scalar(
            "WITH taken AS (
                 DELETE FROM report_dirty
                  WHERE seq IN (SELECT seq FROM report_dirty
                                 WHERE $2::int8 IS NULL OR seq <= $2
                                 ORDER BY seq LIMIT $1)
                 RETURNING customer_id
             )
             SELECT DISTINCT customer_id FROM taken",
        )
        .bind(max_customers)
        .bind(up_to)
        .fetch_all(&mut *tx)
        .await?;
        if !customers.is_empty() {
            sqlx::query(SUBTRACT)
                .bind(&customers)
                .execute(&mut *tx)
                .await?;
            sqlx::query(ADD).bind(&customers).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(customers.len())
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
