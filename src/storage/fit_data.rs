//! What a fit reads: the customers' purchase histories as of a day,
//! grouped where the data lives (one row per distinct history, never per
//! customer), the calibration and holdout histories of an evaluation, and
//! the count of transactions recorded so far.
//!
//! A fit that scores the whole base reads every customer's summary anyway
//! ([`super::ScoringSummary`]); [`Storage::fit_data_from_summaries`] groups
//! those in memory and asks the database only for the customers whose
//! history the summaries cannot give (purchases on both sides of the day).

use chrono::NaiveDate;
use sqlx::postgres::PgRow;

use super::{ScoringSummary, Storage, StorageError};

/// What a fit reads, grouped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitData {
    pub purchase_groups: Vec<PurchaseGroup>,
    /// Customers with a repeat occasion and a positive repeat value.
    pub spend_groups: Vec<SpendGroup>,
}

impl FitData {
    /// The groups in a fixed order (by their keys), whatever order the
    /// database produced them in, so that the same data always gives the
    /// same sums to the fit, to the last bit.
    fn sorted(mut self) -> Self {
        let key = |g: &PurchaseGroup| [g.x, g.t_x, g.t];
        self.purchase_groups
            .sort_by(|a, b| total_order(&key(a), &key(b)));
        self.spend_groups
            .sort_by(|a, b| total_order(&[a.x, a.m], &[b.x, b.m]));
        self
    }
}

/// Lexicographic [`f64::total_cmp`].
fn total_order(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(a, b)| a.total_cmp(b))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Customers with the same purchase history as of a day, in days.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct PurchaseGroup {
    /// Repeat purchase occasions (occasions after the first).
    #[sqlx(try_from = "i32")]
    pub x: f64,
    /// Days from the first occasion to the last.
    #[sqlx(try_from = "i32")]
    pub t_x: f64,
    /// Days from the first occasion to the as-of day.
    #[sqlx(try_from = "i32")]
    pub t: f64,
    #[sqlx(try_from = "i64")]
    pub customers: u64,
}

/// Customers with the same repeat occasions and mean repeat value.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct SpendGroup {
    /// Repeat purchase occasions (above 0).
    #[sqlx(try_from = "i32")]
    pub x: f64,
    /// Mean value of a repeat occasion, in currency units (above 0).
    pub m: f64,
    #[sqlx(try_from = "i64")]
    pub customers: u64,
}

/// Customers with the same calibration history (as of the calibration
/// day) and the same repeat occasions in the holdout after it.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct HoldoutGroup {
    #[sqlx(flatten)]
    pub calibration: PurchaseGroup,
    /// Purchase occasions after the calibration day, up to the holdout's end.
    #[sqlx(try_from = "i32")]
    pub holdout_occasions: u64,
}

/// A row of [`Storage::fit_data`]'s grouping sets: a purchase group
/// (`purchases`, `m` NULL) or a spend group (`t_x`, `t` NULL).
#[derive(Debug, sqlx::FromRow)]
struct GroupRow {
    purchases: bool,
    x: i32,
    t_x: Option<i32>,
    t: Option<i32>,
    m: Option<f64>,
    customers: i64,
}

impl GroupRow {
    fn push_into(self, data: &mut FitData) -> Result<(), StorageError> {
        let customers =
            u64::try_from(self.customers).map_err(|_| StorageError::corrupt("customers", "< 0"))?;
        let x = f64::from(self.x);
        if self.purchases {
            let day = |column: &str, v: Option<i32>| {
                v.map(f64::from)
                    .ok_or_else(|| StorageError::corrupt(column, "NULL in a purchase group"))
            };
            data.purchase_groups.push(PurchaseGroup {
                x,
                t_x: day("t_x", self.t_x)?,
                t: day("t", self.t)?,
                customers,
            });
        } else {
            let m = self
                .m
                .ok_or_else(|| StorageError::corrupt("m", "NULL in a spend group"))?;
            data.spend_groups.push(SpendGroup { x, m, customers });
        }
        Ok(())
    }
}

/// `$select` (grouping) `FROM` the per-customer summaries as of a day,
/// then `$tail`. The summaries come from the day rollups: each customer
/// with a purchase on or before `$1`, with `x`, `t_x`, `t` (days) and
/// `repeat_nanos` (net value of every occasion but the first).
macro_rules! from_summaries_as_of {
    ($select:literal, $tail:literal) => {
        concat!(
            $select,
            " FROM (
                 SELECT count(*)::int - 1 AS x, max(day) - min(day) AS t_x,
                        $1::date - min(day) AS t,
                        sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1] AS repeat_nanos
                   FROM customer_days WHERE day <= $1::date GROUP BY customer_id
             ) s ",
            $tail
        )
    };
}

impl Storage {
    /// Transactions ever recorded (committed), erased ones included.
    pub async fn transactions_counter(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(transactions), 0)::bigint AS transactions FROM ingest_counters",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Grouped summaries as of the end of `as_of_day`. Refunds recorded
    /// later still lower the value of the occasions they refund.
    ///
    /// One statement, one pass: a customer whose last purchase is on or
    /// before the day is read from their `customers` row (which ingest keeps
    /// equal to the aggregate of their `customer_days`), and only the
    /// customers with purchases on both sides of the day are summed from
    /// `customer_days`; both groupings come out of the same scan with
    /// `GROUPING SETS`. What crosses the wire grows with distinct
    /// histories, not with customers. [`Storage::fit_data_from_days`] is
    /// the plain computation it equals.
    pub async fn fit_data(&self, as_of_day: NaiveDate) -> Result<FitData, StorageError> {
        let mut tx = self.pool.begin().await?;
        // The two hash tables hold a row per distinct history (nearly one
        // per returning customer for the spend groups, whose mean value is
        // continuous): room for them in memory rather than spilled batches.
        sqlx::query("SET LOCAL work_mem = '256MB'")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<GroupRow> = sqlx::query_as(
            "WITH s AS (
                 SELECT purchase_occasions - 1 AS x, last_purchase_day - first_purchase_day AS t_x,
                        $1::date - first_purchase_day AS t, repeat_value_nanos AS repeat_nanos
                   FROM customers
                  WHERE purchase_occasions > 0 AND last_purchase_day <= $1::date
                 UNION ALL
                 SELECT count(*)::int - 1, max(d.day) - min(d.day), $1::date - min(d.day),
                        sum(d.net_nanos) - (array_agg(d.net_nanos ORDER BY d.day))[1]
                   FROM customers c JOIN customer_days d ON d.customer_id = c.customer_id
                  WHERE c.purchase_occasions > 0 AND c.first_purchase_day <= $1::date
                    AND c.last_purchase_day > $1::date AND d.day <= $1::date
                  GROUP BY d.customer_id
             )
             SELECT GROUPING(t_x, t) = 0 AS purchases, x, t_x, t, m, count(*) AS customers
               FROM (SELECT x, t_x, t,
                            CASE WHEN x > 0 AND repeat_nanos > 0
                                 THEN repeat_nanos::float8 / 1e9 / x END AS m
                       FROM s) g
              GROUP BY GROUPING SETS ((x, t_x, t), (x, m))
             HAVING GROUPING(t_x, t) = 0 OR m IS NOT NULL",
        )
        .bind(as_of_day)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut data = FitData::default();
        for row in rows {
            row.push_into(&mut data)?;
        }
        Ok(data.sorted())
    }

    /// [`Storage::fit_data`] from the summaries of every customer (as
    /// [`Storage::scoring_summaries`] reads them, current): a customer whose
    /// last purchase is on or before the day is grouped here from their
    /// summary, which is their history as of the day; only the customers
    /// with purchases on both sides of the day are read, summed from their
    /// `customer_days` and grouped by the database (none when the fit is
    /// as of today). Equal to [`Storage::fit_data`], to the last bit: the
    /// mean repeat value is the same IEEE division of the same correctly
    /// rounded nanos (`numeric::float8` and `i128 as f64` both round to
    /// nearest), and the groups come out sorted by their keys.
    ///
    /// This replaces a grouping statement over every customer (2.1–2.6 s
    /// of a fit at a million customers) by a pass over rows the fit had
    /// already read.
    pub async fn fit_data_from_summaries(
        &self,
        as_of_day: NaiveDate,
        summaries: &[ScoringSummary],
    ) -> Result<FitData, StorageError> {
        let straddling = self.fit_data_straddling(as_of_day).await?;
        Ok(FitData::from_summaries(as_of_day, summaries, straddling))
    }

    /// The groups of the customers with purchases on or before the day and
    /// after it, summed from their `customer_days` as of the day.
    pub async fn fit_data_straddling(&self, as_of_day: NaiveDate) -> Result<FitData, StorageError> {
        let rows: Vec<GroupRow> = sqlx::query_as(
            "SELECT GROUPING(t_x, t) = 0 AS purchases, x, t_x, t, m, count(*) AS customers
               FROM (SELECT x, t_x, t,
                            CASE WHEN x > 0 AND repeat_nanos > 0
                                 THEN repeat_nanos::float8 / 1e9 / x END AS m
                       FROM (SELECT count(*)::int - 1 AS x, max(d.day) - min(d.day) AS t_x,
                                    $1::date - min(d.day) AS t,
                                    sum(d.net_nanos) - (array_agg(d.net_nanos ORDER BY d.day))[1]
                                        AS repeat_nanos
                               FROM customers c JOIN customer_days d ON d.customer_id = c.customer_id
                              WHERE c.purchase_occasions > 0 AND c.first_purchase_day <= $1::date
                                AND c.last_purchase_day > $1::date AND d.day <= $1::date
                              GROUP BY d.customer_id) s) g
              GROUP BY GROUPING SETS ((x, t_x, t), (x, m))
             HAVING GROUPING(t_x, t) = 0 OR m IS NOT NULL",
        )
        .bind(as_of_day)
        .fetch_all(&self.pool)
        .await?;
        let mut data = FitData::default();
        for row in rows {
            row.push_into(&mut data)?;
        }
        Ok(data)
    }

    /// [`Storage::fit_data`] computed the plain way, from `customer_days`
    /// alone, one grouping at a time: what the fast read is tested against.
    pub async fn fit_data_from_days(&self, as_of_day: NaiveDate) -> Result<FitData, StorageError> {
        let purchases = from_summaries_as_of!(
            "SELECT x, t_x, t, count(*) AS customers",
            "GROUP BY x, t_x, t"
        );
        let spend = from_summaries_as_of!(
            "SELECT x, repeat_nanos::float8 / 1e9 / x AS m, count(*) AS customers",
            "WHERE x > 0 AND repeat_nanos > 0 GROUP BY x, m"
        );
        Ok(FitData {
            purchase_groups: self.groups_as_of(purchases, as_of_day).await?,
            spend_groups: self.groups_as_of(spend, as_of_day).await?,
        }
        .sorted())
    }

    /// The rows of a grouping read whose only parameter is the as-of day.
    async fn groups_as_of<G>(
        &self,
        sql: &'static str,
        day: NaiveDate,
    ) -> Result<Vec<G>, StorageError>
    where
        G: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(sql).bind(day).fetch_all(&self.pool).await?)
    }

    /// Calibration histories and holdout repeat occasions, grouped, of the
    /// customers whose first purchase is on or before `calibration_day`.
    pub async fn holdout_data(
        &self,
        calibration_day: NaiveDate,
        holdout_day: NaiveDate,
    ) -> Result<Vec<HoldoutGroup>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT x, t_x, t, holdout_occasions, count(*) AS customers FROM (
                 SELECT count(*) FILTER (WHERE day <= $1)::int - 1 AS x,
                        max(day) FILTER (WHERE day <= $1) - min(day) AS t_x,
                        $1::date - min(day) AS t,
                        count(*) FILTER (WHERE day > $1)::int AS holdout_occasions
                   FROM customer_days WHERE day <= $2::date
                  GROUP BY customer_id HAVING min(day) <= $1::date) s
              GROUP BY x, t_x, t, holdout_occasions",
        )
        .bind(calibration_day)
        .bind(holdout_day)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl FitData {
    /// The groups of the customers whose last purchase is on or before
    /// `as_of_day`, from their summaries, added to `straddling` (the groups
    /// of the customers with purchases on both sides of the day,
    /// [`Storage::fit_data_straddling`]), sorted.
    ///
    /// Keys are the values' bits, sorted and counted in runs: every value is
    /// a non-negative float (days, repeat occasions, a positive mean), whose
    /// bits order as [`f64::total_cmp`] orders the values, and equal values
    /// have equal bits (what SQL's `GROUP BY` on the same values does). A
    /// sort of plain integer keys replaces a hash map over a million
    /// customers with the standard (SipHash) hasher.
    pub fn from_summaries(
        as_of_day: NaiveDate,
        summaries: &[ScoringSummary],
        straddling: FitData,
    ) -> FitData {
        let mut purchases: Vec<([u64; 3], u64)> = Vec::with_capacity(summaries.len());
        let mut spend: Vec<([u64; 2], u64)> = Vec::with_capacity(summaries.len());
        for g in &straddling.purchase_groups {
            purchases.push(([g.x.to_bits(), g.t_x.to_bits(), g.t.to_bits()], g.customers));
        }
        for g in &straddling.spend_groups {
            spend.push(([g.x.to_bits(), g.m.to_bits()], g.customers));
        }
        for s in summaries {
            if s.last_purchase_day > as_of_day {
                continue;
            }
            let x = f64::from(s.purchase_occasions - 1);
            let days = |from: NaiveDate, to: NaiveDate| (to - from).num_days() as f64;
            let t_x = days(s.first_purchase_day, s.last_purchase_day);
            let t = days(s.first_purchase_day, as_of_day);
            purchases.push(([x.to_bits(), t_x.to_bits(), t.to_bits()], 1));
            let repeat = s.repeat_value.nanos();
            if x > 0.0 && repeat > 0 {
                let m = repeat as f64 / 1e9 / x;
                spend.push(([x.to_bits(), m.to_bits()], 1));
            }
        }
        FitData {
            purchase_groups: counted_runs(purchases)
                .map(|([x, t_x, t], customers)| PurchaseGroup {
                    x: f64::from_bits(x),
                    t_x: f64::from_bits(t_x),
                    t: f64::from_bits(t),
                    customers,
                })
                .collect(),
            spend_groups: counted_runs(spend)
                .map(|([x, m], customers)| SpendGroup {
                    x: f64::from_bits(x),
                    m: f64::from_bits(m),
                    customers,
                })
                .collect(),
        }
        .sorted()
    }
}

/// `keys` sorted, each distinct key once with its counts summed.
fn counted_runs<K: Ord + Copy>(mut keys: Vec<(K, u64)>) -> impl Iterator<Item = (K, u64)> {
    keys.sort_unstable_by_key(|k| k.0);
    let mut runs: Vec<(K, u64)> = Vec::new();
    for (key, n) in keys {
        match runs.last_mut() {
            Some((last, count)) if *last == key => *count += n,
            _ => runs.push((key, n)),
        }
    }
    runs.into_iter()
}
