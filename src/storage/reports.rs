//! The reads behind ReportService: cohort facts and the loyalty summary's
//! counts (the segment breakdown, kept per model version, is
//! [`super::evaluations`]'). Every statement aggregates where the
//! data lives and returns one row per cohort cell, cohort or segment, never
//! per customer (except the grouped histories a forecast needs).
//!
//! Purchase data comes from one of two sources ([`DaysAsOf`]): everything
//! recorded so far (the cohort aggregates of [`super::aggregates`] and the
//! customer summaries kept at ingest), or, for an as_of in the past, the
//! transactions themselves, where purchases and refunds after as_of are
//! left out (a refund still counts on its purchase's day). The loyalty
//! summary reads the customer summaries, and the per-customer-day rollups
//! of its period only.
//!
//! Money sums stay `numeric` in SQL and come back as exact text (see
//! [`super::money`]): a sum past what Money carries is an OUT_OF_RANGE
//! error for that one report, never a wrapped or failed bigint cast.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::{money::total, Storage, StorageError};
use crate::domain::{Activity, CohortFacts, CohortRange, CohortSize, NpsCounts, Total};

/// Which purchase data a report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaysAsOf {
    /// Everything recorded: the aggregates for cohort cells, the rollups
    /// kept at ingest for per-customer histories.
    Latest,
    /// Purchases and refunds that occurred at or before this instant.
    Instant(DateTime<Utc>),
}

impl DaysAsOf {
    /// `firsts(customer_id, first_day, last_day, occasions, repeat_net)`:
    /// one row per customer; for an instant also `days(customer_id, day,
    /// orders, net, cost, uncosted, first_day, occasions)`: one row per
    /// customer and purchase occasion, carrying the customer's first day
    /// and occasion count (so that cohort cells need no join between
    /// CTEs, whose sizes PostgreSQL cannot estimate), and `$1` is the
    /// instant.
    fn ctes(self) -> &'static str {
        match self {
            DaysAsOf::Latest => {
                "firsts AS (
                     SELECT customer_id, first_purchase_day AS first_day, last_purchase_day AS last_day,
                            purchase_occasions::int8 AS occasions, repeat_value_nanos AS repeat_net
                       FROM customers WHERE purchase_occasions > 0
                 )"
            }
            DaysAsOf::Instant(_) => {
                "refunds AS (
                     SELECT customer_id, refunded_transaction_id AS transaction_id, sum(amount_nanos) AS refunded
                       FROM transactions WHERE kind = 2 AND occurred_at <= $1
                      GROUP BY 1, 2
                 ), days AS (
                     SELECT p.customer_id, p.occasion_day AS day, count(*) AS orders,
                            sum(p.amount_nanos - coalesce(r.refunded, 0)) AS net,
                            coalesce(sum(p.cost_nanos), 0) AS cost,
                            count(*) FILTER (WHERE p.cost_nanos IS NULL) AS uncosted,
                            min(p.occasion_day) OVER customer AS first_day,
                            count(*) OVER customer AS occasions
                       FROM transactions p
                       LEFT JOIN refunds r USING (customer_id, transaction_id)
                      WHERE p.kind = 1 AND p.occurred_at <= $1
                      GROUP BY 1, 2
                     WINDOW customer AS (PARTITION BY p.customer_id)
                 ), firsts AS (
                     SELECT customer_id, min(day) AS first_day, max(day) AS last_day, count(*) AS occasions,
                            sum(net) - (array_agg(net ORDER BY day))[1] AS repeat_net
                       FROM days GROUP BY customer_id
                 )"
            }
        }
    }

    fn instant(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            DaysAsOf::Latest => now,
            DaysAsOf::Instant(t) => t,
        }
    }
}

/// Where a report for [`DaysAsOf::Latest`] takes its cohort cells from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestCells {
    /// The cohort aggregates (`cohort_cells`), which the caller has brought
    /// up to date.
    Aggregates,
    /// Computed from the rollups kept at ingest (`customers` and
    /// `customer_days`), in the statement's one snapshot: for a report while
    /// the aggregates are far behind (after a bulk import), where reading
    /// the rollups of the report's cohorts costs less than catching the
    /// aggregates up first.
    Rollups,
}

/// Customers of a cohort with the same history (x + 1 occasions, first and
/// last occasion, repeat value): what a forecast needs, grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortHistory {
    pub cohort: NaiveDate,
    pub occasions: i64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub repeat_net: Total,
    pub customers: i64,
}

/// The loyalty summary's counts over the business days [start, end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoyaltyCounts {
    /// First occasion before `end`.
    pub customers: u64,
    /// First occasion in [start, end).
    pub new_customers: u64,
    /// A purchase occasion in [start, end).
    pub active_customers: u64,
    /// First occasion before `start`.
    pub existing_customers: u64,
    /// Existing and active.
    pub retained_customers: u64,
    /// Two or more occasions before `end`.
    pub repeat_customers: u64,
    /// Net revenue of all occasions before `end`.
    pub historical_revenue: Total,
    /// Net revenue of the occasions in [start, end).
    pub period_revenue: Total,
    /// Of it, the top 20% of active customers by their revenue in the period.
    pub top_fifth_revenue: Total,
    pub spend: Total,
    pub nps: NpsCounts,
    pub csat_answers: u64,
    pub csat_satisfied: u64,
    pub ces_answers: u64,
    pub ces_sum: i64,
}

/// Customers of one segment or value tier under a model version.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    /// "segment" or "value_tier".
    pub dimension: String,
    pub name: String,
    pub customers: u64,
    pub historical_revenue: Total,
    /// Mean of historical + predicted value, in currency units.
    pub average_value: f64,
    pub average_churn_risk: f64,
}

/// A count read as `bigint` (never negative).
pub(super) fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// A row of [`Storage::cohort_facts`]' read; what its numbers are depends
/// on its kind (money is numeric as exact text):
/// - `size`: `a` customers, `b` repeat customers;
/// - `cell` (a cohort's `period`): `a` active customers, `b` orders,
///   `e` uncosted purchases, `money_a` net revenue, `money_b` cost;
/// - `nps`: `a` respondents, `b` promoters, `c` detractors;
/// - `spend`: `money_a` acquisition spend.
#[derive(Debug, sqlx::FromRow)]
struct FactRow {
    kind: String,
    cohort: NaiveDate,
    period: Option<NaiveDate>,
    a: i64,
    b: i64,
    c: i64,
    e: i64,
    money_a: Option<String>,
    money_b: Option<String>,
}

impl FactRow {
    fn add_to(self, facts: &mut CohortFacts) -> Result<(), StorageError> {
        let cohort = self.cohort;
        match self.kind.as_str() {
            "size" => {
                facts.sizes.insert(
                    cohort,
                    CohortSize {
                        customers: count(self.a),
                        repeat_customers: count(self.b),
                    },
                );
            }
            "cell" => {
                let period = self
                    .period
                    .ok_or_else(|| StorageError::corrupt("cohort_cells.period", "NULL"))?;
                facts.activity.insert(
                    (cohort, period),
                    Activity {
                        active_customers: count(self.a),
                        orders: count(self.b),
                        net: total("net_nanos", self.money_a.as_deref())?,
                        cost: total("cost_nanos", self.money_b.as_deref())?,
                        uncosted_purchases: count(self.e),
                    },
                );
            }
            "nps" => {
                facts.nps.insert(
                    cohort,
                    NpsCounts {
                        respondents: count(self.a),
                        promoters: count(self.b),
                        detractors: count(self.c),
                    },
                );
            }
            _ => {
                let spend = total("acquisition_spend.amount_nanos", self.money_a.as_deref())?;
                facts.spend.insert(cohort, spend);
            }
        }
        Ok(())
    }
}

/// A row of [`Storage::cohort_histories`]' read.
#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    cohort: NaiveDate,
    occasions: i64,
    first_day: NaiveDate,
    last_day: NaiveDate,
    repeat_net: Option<String>,
    customers: i64,
}

impl HistoryRow {
    fn decode(self) -> Result<CohortHistory, StorageError> {
        Ok(CohortHistory {
            cohort: self.cohort,
            occasions: self.occasions,
            first_day: self.first_day,
            last_day: self.last_day,
            repeat_net: total("repeat_net", self.repeat_net.as_deref())?,
            customers: self.customers,
        })
    }
}

/// The row of [`Storage::loyalty_counts`]' read (money as exact text).
#[derive(Debug, sqlx::FromRow)]
struct LoyaltyRow {
    customers: i64,
    new_customers: i64,
    active_customers: i64,
    existing_customers: i64,
    retained_customers: i64,
    repeat_customers: i64,
    historical_revenue: Option<String>,
    period_revenue: Option<String>,
    top_fifth_revenue: Option<String>,
    spend: Option<String>,
    nps_respondents: i64,
    nps_promoters: i64,
    nps_detractors: i64,
    csat_answers: i64,
    csat_satisfied: i64,
    ces_answers: i64,
    ces_sum: i64,
}

impl LoyaltyRow {
    fn decode(self) -> Result<LoyaltyCounts, StorageError> {
        Ok(LoyaltyCounts {
            customers: count(self.customers),
            new_customers: count(self.new_customers),
            active_customers: count(self.active_customers),
            existing_customers: count(self.existing_customers),
            retained_customers: count(self.retained_customers),
            repeat_customers: count(self.repeat_customers),
            historical_revenue: total("historical_revenue", self.historical_revenue.as_deref())?,
            period_revenue: total("period_revenue", self.period_revenue.as_deref())?,
            top_fifth_revenue: total("top_fifth_revenue", self.top_fifth_revenue.as_deref())?,
            spend: total("spend", self.spend.as_deref())?,
            nps: NpsCounts {
                respondents: count(self.nps_respondents),
                promoters: count(self.nps_promoters),
                detractors: count(self.nps_detractors),
            },
            csat_answers: count(self.csat_answers),
            csat_satisfied: count(self.csat_satisfied),
            ces_answers: count(self.ces_answers),
            ces_sum: self.ces_sum,
        })
    }
}

/// A row of a segment read (revenue as exact text): the segments and
/// value tiers of a version's scores ([`super::evaluations`]).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SegmentRecord {
    dimension: String,
    name: String,
    customers: i64,
    revenue: Option<String>,
    average_value: f64,
    average_churn_risk: f64,
}

impl SegmentRecord {
    pub(super) fn decode(self) -> Result<SegmentRow, StorageError> {
        Ok(SegmentRow {
            dimension: self.dimension,
            name: self.name,
            customers: count(self.customers),
            historical_revenue: total("historical_value_nanos", self.revenue.as_deref())?,
            average_value: self.average_value,
            average_churn_risk: self.average_churn_risk,
        })
    }
}

/// The NPS per cohort of the latest data (the aggregates' or the rollups'
/// report): each answer's customer looked up in `customers` by key, so
/// that only the answers' customers are read, not every member.
const LATEST_NPS: &str =
    "SELECT 'nps', date_trunc($2, c.first_purchase_day::timestamp)::date, NULL, count(*),
            count(*) FILTER (WHERE a.nps >= 9), count(*) FILTER (WHERE a.nps <= 6), 0,
            NULL, NULL
       FROM answers a JOIN customers c USING (customer_id)
      WHERE c.purchase_occasions > 0 AND c.first_purchase_day >= $3
        AND c.first_purchase_day < $4
      GROUP BY 2";

impl Storage {
    /// Cohort sizes, activity per (cohort, period), NPS of the cohorts'
    /// customers and acquisition spend, for the cohorts of `range`. `Latest`
    /// reads the aggregates (`cohort_cells`), which the caller has brought
    /// up to date; a past instant computes from the transactions.
    pub async fn cohort_facts(
        &self,
        range: &CohortRange,
        source: DaysAsOf,
        time_zone: Tz,
        now: DateTime<Utc>,
    ) -> Result<CohortFacts, StorageError> {
        self.cohort_facts_from(range, source, LatestCells::Aggregates, time_zone, now)
            .await
    }

    /// [`Storage::cohort_facts`], for `Latest` with its cells from `cells`.
    pub async fn cohort_facts_from(
        &self,
        range: &CohortRange,
        source: DaysAsOf,
        cells: LatestCells,
        time_zone: Tz,
        now: DateTime<Utc>,
    ) -> Result<CohortFacts, StorageError> {
        let rollups = source == DaysAsOf::Latest && cells == LatestCells::Rollups;
        let unit = range.granularity.sql_unit();
        let periods_end = range
            .granularity
            .add(range.cohorts_end(), range.periods)
            .min(range.as_of_day + chrono::Days::new(1));
        // Rows (kind, cohort, period, a, b, c, e, money_a, money_b):
        // ('size', cohort, NULL, customers, repeat customers, ...),
        // ('cell', cohort, period, active, orders, 0, uncosted, net, cost),
        // ('nps', cohort, NULL, respondents, promoters, detractors) and
        // ('spend', cohort, NULL, ..., nanos). Money is numeric as text.
        // No statement joins two CTEs: PostgreSQL cannot estimate a CTE's
        // rows after a filter (it guesses one), and planned such a join as
        // a nested loop over every (member, day) pair, which ran past the
        // statement timeout on 20,000 customers. Cells read `days` alone
        // (each row carries its customer's first day); the NPS per cohort
        // groups members and answers by customer instead of joining them.
        // Latest has no such CTE to join: its NPS looks up each answer's
        // customer in `customers` (by key), so that it reads the answers'
        // customers only, not every member (a second on a million
        // customers, with no answer at all).
        let (sizes_and_cells, members, nps) = match source {
            // The sums the aggregation step stores, for the report's
            // cohorts only, straight from the day rollups: one pass over
            // the days in customer and day order, each day counting its
            // customer as active when it is their first day in its period
            // (the previous day, by `lag`, is in another period), grouped
            // per cell. No group per customer and period (about one per
            // rollup row after a bulk import, each with numeric sums).
            DaysAsOf::Latest if rollups => (
                "SELECT 'size' AS kind, cohort, NULL::date AS period, count(*) AS a,
                        count(*) FILTER (WHERE occasions >= 2) AS b, 0::int8 AS c, 0::int8 AS e,
                        NULL::text AS money_a, NULL::text AS money_b
                   FROM members GROUP BY cohort
                 UNION ALL
                 SELECT 'cell', cohort, period, count(*) FILTER (WHERE first_in_period),
                        sum(orders)::int8, 0, sum(uncosted)::int8, sum(net)::text, sum(cost)::text
                   FROM (SELECT date_trunc($2, c.first_purchase_day::timestamp)::date AS cohort,
                                date_trunc($2, d.day::timestamp)::date AS period,
                                d.purchases AS orders, d.net_nanos AS net, d.cost_nanos AS cost,
                                d.uncosted_purchases AS uncosted,
                                date_trunc($2, (lag(d.day) OVER (PARTITION BY d.customer_id
                                                                 ORDER BY d.day))::timestamp)
                                    IS DISTINCT FROM date_trunc($2, d.day::timestamp)
                                    AS first_in_period
                           FROM customers c JOIN customer_days d USING (customer_id)
                          WHERE c.purchase_occasions > 0 AND c.first_purchase_day >= $3
                            AND c.first_purchase_day < $4 AND d.day >= $3 AND d.day < $5) days
                  GROUP BY cohort, period",
                "SELECT customer_id, date_trunc($2, first_purchase_day::timestamp)::date AS cohort,
                        purchase_occasions AS occasions
                   FROM customers
                  WHERE purchase_occasions > 0 AND first_purchase_day >= $3 AND first_purchase_day < $4",
                LATEST_NPS,
            ),
            DaysAsOf::Latest => (
                "SELECT 'size' AS kind, cohort, NULL::date AS period, customers AS a,
                        repeat_customers AS b, 0::int8 AS c, 0::int8 AS e, NULL::text AS money_a,
                        NULL::text AS money_b
                   FROM cohort_cells
                  WHERE granularity = $9 AND cohort >= $3 AND cohort < $4 AND period = cohort
                 UNION ALL
                 SELECT 'cell', cohort, period, customers, orders, 0, uncosted, net_nanos::text,
                        cost_nanos::text
                   FROM cohort_cells
                  WHERE granularity = $9 AND cohort >= $3 AND cohort < $4 AND period < $5
                    AND customers <> 0",
                "SELECT customer_id, date_trunc($2, first_purchase_day::timestamp)::date AS cohort
                   FROM customers
                  WHERE purchase_occasions > 0 AND first_purchase_day >= $3 AND first_purchase_day < $4",
                LATEST_NPS,
            ),
            DaysAsOf::Instant(_) => (
                "SELECT 'size' AS kind, cohort, NULL::date AS period, count(*) AS a,
                        count(*) FILTER (WHERE occasions >= 2) AS b, 0::int8 AS c, 0::int8 AS e,
                        NULL::text AS money_a, NULL::text AS money_b
                   FROM members GROUP BY cohort
                 UNION ALL
                 SELECT 'cell', cohort, period, count(*), sum(orders)::int8, 0,
                        sum(uncosted)::int8, sum(net)::text, sum(cost)::text
                   FROM (SELECT date_trunc($2, d.first_day::timestamp)::date AS cohort,
                                date_trunc($2, d.day::timestamp)::date AS period,
                                sum(d.orders) AS orders, sum(d.net) AS net, sum(d.cost) AS cost,
                                sum(d.uncosted) AS uncosted
                           FROM days d
                          WHERE d.first_day >= $3 AND d.first_day < $4 AND d.day >= $3 AND d.day < $5
                          GROUP BY d.customer_id, 1, 2) per_customer
                  GROUP BY cohort, period",
                // One row per member: its first day's.
                "SELECT customer_id, date_trunc($2, first_day::timestamp)::date AS cohort, occasions
                   FROM days WHERE day = first_day AND first_day >= $3 AND first_day < $4",
                "SELECT 'nps', cohort, NULL, count(*), count(*) FILTER (WHERE nps >= 9),
                        count(*) FILTER (WHERE nps <= 6), 0, NULL, NULL
                   FROM (SELECT max(cohort) AS cohort, max(nps) AS nps
                           FROM (SELECT customer_id, cohort, NULL::int AS nps FROM members
                                 UNION ALL
                                 SELECT customer_id, NULL::date, nps FROM answers) u
                          GROUP BY customer_id HAVING count(cohort) > 0 AND count(nps) > 0) answered
                  GROUP BY cohort",
            ),
        };
        let sql = format!(
            "WITH {ctes}, members AS ({members}), answers AS (
                 SELECT DISTINCT ON (customer_id) customer_id, nps
                   FROM feedback WHERE nps IS NOT NULL AND occurred_at <= $1
                  ORDER BY customer_id, occurred_at DESC, feedback_id DESC
             )
             {sizes_and_cells}
             UNION ALL
             {nps}
             UNION ALL
             SELECT 'spend', date_trunc($2, start_time AT TIME ZONE $6)::date, NULL,
                    0, 0, 0, 0, sum(amount_nanos)::text, NULL
               FROM acquisition_spend
              WHERE start_time >= $7 AND start_time < $8
              GROUP BY 2",
            ctes = source.ctes()
        );
        let mut query = sqlx::query_as(&sql)
            .bind(source.instant(now))
            .bind(unit)
            .bind(range.first_cohort)
            .bind(range.cohorts_end())
            .bind(periods_end)
            .bind(time_zone.name())
            .bind(crate::domain::start_of_day(time_zone, range.first_cohort))
            .bind(crate::domain::start_of_day(time_zone, range.cohorts_end()));
        if source == DaysAsOf::Latest && !rollups {
            query = query.bind(range.granularity.code());
        }
        let rows: Vec<FactRow> = if rollups {
            // Memory for the sort of the days (in memory rather than
            // spilled to disk after a bulk import).
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL work_mem = '256MB'")
                .execute(&mut *tx)
                .await?;
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        } else {
            query.fetch_all(&self.pool).await?
        };
        let mut facts = CohortFacts::default();
        for row in rows {
            row.add_to(&mut facts)?;
        }
        Ok(facts)
    }

    /// The histories of the cohorts' customers as of `source`, grouped.
    pub async fn cohort_histories(
        &self,
        range: &CohortRange,
        source: DaysAsOf,
        now: DateTime<Utc>,
    ) -> Result<Vec<CohortHistory>, StorageError> {
        let sql = format!(
            "WITH {ctes}
             SELECT date_trunc($2, first_day::timestamp)::date AS cohort, occasions, first_day, last_day,
                    repeat_net::text AS repeat_net,
                    count(*) AS customers
               FROM firsts WHERE first_day >= $3 AND first_day < $4
              GROUP BY 1, 2, 3, 4, 5",
            ctes = source.ctes()
        );
        let rows: Vec<HistoryRow> = sqlx::query_as(&sql)
            .bind(source.instant(now))
            .bind(range.granularity.sql_unit())
            .bind(range.first_cohort)
            .bind(range.cohorts_end())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(HistoryRow::decode).collect()
    }

    /// The loyalty summary's counts over business days [start, end), whose
    /// instants are [start_at, end_at).
    pub async fn loyalty_counts(
        &self,
        (start, end): (NaiveDate, NaiveDate),
        (start_at, end_at): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<LoyaltyCounts, StorageError> {
        // Per customer, the summary row (`customers`, always the aggregate
        // of the customer's day rows) stands for every occasion before
        // `end`, except for the few customers with an occasion on or after
        // `end` (`late`), whose days before `end` are read instead. The
        // period's revenue is read from the days within [start, end)
        // alone (`in_period`, the index on `customer_days (day)`), not from
        // every customer's every day. Every new customer (first occasion
        // in the period) is active, and every other active one existed
        // before it: retained = active - new, with no join of the two.
        let row: LoyaltyRow = sqlx::query_as(
            "WITH in_period AS (
                 SELECT customer_id, sum(net_nanos) AS period_net
                   FROM customer_days WHERE day >= $1 AND day < $2 GROUP BY customer_id
             ), late AS (
                 SELECT d.customer_id, count(*) AS occasions, sum(d.net_nanos) AS net
                   FROM customer_days d
                  WHERE d.day < $2
                    AND d.customer_id IN (SELECT customer_id FROM customer_days WHERE day >= $2)
                  GROUP BY d.customer_id
             ), before_end AS (
                 SELECT count(*) AS customers,
                        count(*) FILTER (WHERE c.first_purchase_day >= $1) AS new_customers,
                        count(*) FILTER (WHERE c.first_purchase_day < $1) AS existing_customers,
                        count(*) FILTER (WHERE coalesce(l.occasions, c.purchase_occasions) >= 2)
                          AS repeat_customers,
                        coalesce(sum(coalesce(l.net, c.net_revenue_nanos)), 0)::text AS historical_revenue
                   FROM customers c LEFT JOIN late l USING (customer_id)
                  WHERE c.purchase_occasions > 0 AND c.first_purchase_day < $2
             ), active AS (
                 SELECT count(*) AS customers, coalesce(sum(period_net), 0) AS revenue
                   FROM in_period
             ), top_fifth AS (
                 SELECT period_net FROM in_period ORDER BY period_net DESC
                  LIMIT (SELECT ceil(customers * 0.2)::int8 FROM active)
             ), answers AS (
                 SELECT DISTINCT ON (customer_id) nps
                   FROM feedback WHERE nps IS NOT NULL AND occurred_at >= $3 AND occurred_at < $4
                  ORDER BY customer_id, occurred_at DESC, feedback_id DESC
             )
             SELECT
               b.customers, b.new_customers, a.customers AS active_customers, b.existing_customers,
               a.customers - b.new_customers AS retained_customers, b.repeat_customers,
               b.historical_revenue, a.revenue::text AS period_revenue,
               (SELECT coalesce(sum(period_net), 0)::text FROM top_fifth) AS top_fifth_revenue,
               (SELECT coalesce(sum(amount_nanos), 0)::text FROM acquisition_spend
                 WHERE start_time >= $3 AND start_time < $4) AS spend,
               (SELECT count(*) FROM answers) AS nps_respondents,
               (SELECT count(*) FROM answers WHERE nps >= 9) AS nps_promoters,
               (SELECT count(*) FROM answers WHERE nps <= 6) AS nps_detractors,
               count(*) FILTER (WHERE f.csat IS NOT NULL) AS csat_answers,
               count(*) FILTER (WHERE f.csat >= 4) AS csat_satisfied,
               count(*) FILTER (WHERE f.ces IS NOT NULL) AS ces_answers,
               coalesce(sum(f.ces), 0)::int8 AS ces_sum
             FROM before_end b CROSS JOIN active a
             LEFT JOIN feedback f ON f.occurred_at >= $3 AND f.occurred_at < $4
             GROUP BY b.customers, b.new_customers, b.existing_customers, b.repeat_customers,
                      b.historical_revenue, a.customers, a.revenue",
        )
        .bind(start)
        .bind(end)
        .bind(start_at)
        .bind(end_at)
        .fetch_one(&self.pool)
        .await?;
        row.decode()
    }
}
