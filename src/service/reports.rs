//! The reports use-case: cohorts (with model forecasts), the loyalty
//! summary and the segment breakdown. Storage aggregates; the domain lays
//! out and computes the rates; this module picks the data source, runs the
//! forecast and reads the active model. The aggregates of a version's
//! scores (segments, value tiers, the value curve, the mean predicted
//! value) are computed on first use and kept with the version.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clv_model::ModelError;

use super::{no_model::NoActiveModel, population::clv_model, scoring::history_summary};
use crate::{
    domain::{
        build_cohorts, business_day, per_customer, rate, report_order, start_of_day, value_curve,
        Cohort, CohortRange, FittedModels, ModelVersion, Projection, Total, TotalOutOfRange,
        ValueCurvePoint,
    },
    storage::{CohortHistory, DaysAsOf, LatestCells, SegmentRow, Storage, StorageError},
};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A report of the active model's scores before any fit
    /// (FAILED_PRECONDITION).
    #[error(transparent)]
    NoActiveModel(#[from] NoActiveModel),
    /// OUT_OF_RANGE: a figure of the report passes what Money can carry.
    #[error(transparent)]
    TotalOutOfRange(#[from] TotalOutOfRange),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A cohort report as computed.
#[derive(Debug, Clone)]
pub struct CohortOutcome {
    pub as_of: DateTime<Utc>,
    pub cohorts: Vec<Cohort>,
    /// The model behind forecast periods.
    pub model_version: Option<i64>,
    /// Why a requested forecast was not made.
    pub forecast_note: Option<String>,
}

/// The loyalty summary over business days [start, end).
#[derive(Debug, Clone)]
pub struct Loyalty {
    /// Customers with a purchase before `end`.
    pub customers: u64,
    /// Of them, first purchase within [start, end).
    pub new_customers: u64,
    /// Of them, a purchase within [start, end).
    pub active_customers: u64,
    pub retention_rate: Option<f64>,
    pub churn_rate: Option<f64>,
    /// Net Promoter Score of the answers within the period.
    pub nps: Option<f64>,
    pub acquisition_spend: Total,
    /// Net revenue within the period.
    pub revenue: Total,
    pub repeat_purchase_rate: Option<f64>,
    pub average_historical_clv: Option<Total>,
    /// (mean predicted value in currency units, model version).
    pub average_predicted_clv: Option<(f64, i64)>,
    pub cac: Option<Total>,
    pub ltv_to_cac: Option<f64>,
    pub csat: Option<f64>,
    pub ces: Option<f64>,
    pub top_20_percent_revenue_share: Option<f64>,
}

/// Segments and value tiers under the active model.
#[derive(Debug, Clone)]
pub struct Segments {
    pub model: ModelVersion,
    pub segments: Vec<SegmentShare>,
    pub value_tiers: Vec<SegmentShare>,
    /// The Pareto curve of total value, a point per percentile of customers.
    pub value_curve: Vec<ValueCurvePoint>,
}

/// The customers of one segment or value tier.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentShare {
    pub name: String,
    pub customers: u64,
    /// Their historical revenue over everyone's (0 when that is not
    /// positive).
    pub share_of_revenue: f64,
    /// Mean of historical + predicted value, in currency units.
    pub average_value: f64,
    pub average_churn_risk: f64,
}

impl SegmentShare {
    fn of(row: SegmentRow, total_revenue: Total) -> Self {
        let total = total_revenue.nanos();
        Self {
            share_of_revenue: if total > 0 {
                row.historical_revenue.nanos() as f64 / total as f64
            } else {
                0.0
            },
            name: row.name,
            customers: row.customers,
            average_value: row.average_value,
            average_churn_risk: row.average_churn_risk,
        }
    }
}

/// Queue entries a report without as_of catches up before it reads the
/// aggregates (at 170–250 µs per customer, about a second at most; a bulk
/// import queues each customer about once per batch). Behind by more, it
/// reads the rollups instead (docs/benchmarks.md, "Report aggregates after
/// a bulk import").
pub const CATCH_UP_AT_MOST: i64 = 5_000;

pub struct Reports {
    storage: Storage,
    time_zone: Tz,
}

impl Reports {
    pub fn new(storage: Storage, time_zone: Tz) -> Self {
        Self { storage, time_zone }
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The business day of an instant.
    pub fn day(&self, at: DateTime<Utc>) -> NaiveDate {
        business_day(self.time_zone, at)
    }

    /// The first instant of a business day.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        start_of_day(self.time_zone, day)
    }

    /// Brings the customers of at most `max_entries` queue entries up to
    /// date in the cohort aggregates; returns how many customers it did.
    pub async fn aggregate_some(&self, max_entries: i64) -> Result<usize, StorageError> {
        self.storage.aggregate_step(max_entries, None).await
    }

    /// Where a report without as_of reads its cells: the aggregates,
    /// brought up to date with everything committed before the call in one
    /// step (each queued customer once, however often queued) when the
    /// queue holds at most [`CATCH_UP_AT_MOST`] entries; behind by more
    /// (after a bulk import, say), the rollups kept at ingest, which hold
    /// everything committed, and the queue is left to the background job.
    /// What ingest queues meanwhile is left to the job too, so a steady
    /// ingest cannot keep a report catching up forever.
    pub async fn catch_up(&self) -> Result<LatestCells, StorageError> {
        let backlog = self.storage.aggregate_backlog().await?;
        if backlog > CATCH_UP_AT_MOST {
            tracing::debug!(
                backlog,
                "cohort report read from the rollups: the aggregates are far behind"
            );
            return Ok(LatestCells::Rollups);
        }
        let Some(end) = self.storage.aggregate_queue_end().await? else {
            return Ok(LatestCells::Aggregates);
        };
        let started = std::time::Instant::now();
        let customers = self.storage.aggregate_through(end).await?;
        // A long catch-up (after a bulk import, say) is worth a line: the
        // report waited for it, and so did any erasure meanwhile.
        if started.elapsed() >= std::time::Duration::from_secs(1) {
            tracing::info!(
                customers,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cohort report aggregates caught up before a report"
            );
        }
        Ok(LatestCells::Aggregates)
    }

    /// A cohort report. Without `as_of` it reads the aggregates, brought up
    /// to date first (everything recorded); with one, the transactions up
    /// to it.
    pub async fn cohort_report(
        &self,
        range: &CohortRange,
        as_of: Option<DateTime<Utc>>,
        include_forecast: bool,
    ) -> Result<CohortOutcome, ReportError> {
        let now = Utc::now();
        let source = as_of.map_or(DaysAsOf::Latest, DaysAsOf::Instant);
        let cells = match source {
            DaysAsOf::Latest => self.catch_up().await?,
            DaysAsOf::Instant(_) => LatestCells::Aggregates,
        };
        let mut facts = self
            .storage
            .cohort_facts_from(range, source, cells, self.time_zone, now)
            .await?;
        let (mut model_version, mut forecast_note) = (None, None);
        // Any cohort's periods may reach past as_of, the last cohort's
        // furthest (not only the first's).
        let future = range.last_period_start() > range.as_of_day;
        if include_forecast && !future {
            forecast_note = Some(format!(
                "no period of the report starts after as_of (business day {}): \
                 there is nothing to forecast",
                range.as_of_day
            ));
        }
        if include_forecast && future {
            let active = self.storage.model(None).await?;
            match active.as_ref().and_then(|m| Some((m.version, m.fitted()?))) {
                None => forecast_note = Some(NoActiveModel::read(&self.storage).await?.to_string()),
                Some((version, fitted)) => {
                    let histories = self.storage.cohort_histories(range, source, now).await?;
                    match project_off_workers(*range, fitted.clone(), histories).await {
                        Ok(p) => {
                            facts.projections = p;
                            model_version = Some(version);
                        }
                        Err(note) => forecast_note = Some(note),
                    }
                }
            }
        }
        Ok(CohortOutcome {
            as_of: as_of.unwrap_or(now),
            cohorts: build_cohorts(range, &facts, model_version.is_some())?,
            model_version,
            forecast_note,
        })
    }

    /// The loyalty summary over business days [start, end).
    pub async fn loyalty(&self, start: NaiveDate, end: NaiveDate) -> Result<Loyalty, ReportError> {
        // Independent reads: at once.
        let counts = self
            .storage
            .loyalty_counts((start, end), (self.start_of(start), self.start_of(end)));
        let predicted = async {
            Ok::<_, StorageError>(match self.storage.model(None).await? {
                Some(m) => {
                    let scores = self.storage.score_aggregates(m.version).await?;
                    (scores.customers > 0).then_some((scores.mean_predicted_value, m.version))
                }
                None => None,
            })
        };
        let (c, predicted) = tokio::try_join!(counts, predicted)?;
        let historical = per_customer(c.historical_revenue, c.customers);
        let cac = (c.spend.nanos() > 0 || c.new_customers > 0)
            .then(|| per_customer(c.spend, c.new_customers))
            .flatten();
        let ltv = historical.map(|h| h.nanos() as f64 + predicted.map_or(0.0, |p| p.0 * 1e9));
        let retention_rate = rate(c.retained_customers, c.existing_customers);
        Ok(Loyalty {
            customers: c.customers,
            new_customers: c.new_customers,
            active_customers: c.active_customers,
            retention_rate,
            churn_rate: retention_rate.map(|r| 1.0 - r),
            nps: c.nps.score(),
            acquisition_spend: c.spend,
            revenue: c.period_revenue,
            repeat_purchase_rate: rate(c.repeat_customers, c.customers),
            average_historical_clv: historical,
            average_predicted_clv: predicted,
            ltv_to_cac: cac
                .zip(ltv)
                .and_then(|(cac, ltv)| (cac.nanos() > 0).then(|| ltv / cac.nanos() as f64)),
            csat: rate(c.csat_satisfied, c.csat_answers),
            ces: (c.ces_answers > 0).then(|| c.ces_sum as f64 / c.ces_answers as f64),
            top_20_percent_revenue_share: (c.period_revenue.nanos() > 0)
                .then(|| c.top_fifth_revenue.nanos() as f64 / c.period_revenue.nanos() as f64),
            cac,
        })
    }

    /// Segments and value tiers of the active model's scores.
    /// FAILED_PRECONDITION before the first model.
    pub async fn segments(&self) -> Result<Segments, ReportError> {
        let Some(model) = self
            .storage
            .model(None)
            .await?
            .filter(|m| m.fitted().is_some())
        else {
            return Err(NoActiveModel::read(&self.storage).await?.into());
        };
        // Computed once per version and kept: its scores never change.
        let scores = self.storage.score_aggregates(model.version).await?;
        let rows = scores.segments;
        let total_revenue = Total::checked_sum(
            rows.iter()
                .filter(|r| r.dimension == "segment")
                .map(|r| r.historical_revenue),
        )?;
        let (segments, value_tiers): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|r| r.dimension == "segment");
        // The stated order: segments best first, value tiers top down.
        let shares = |mut rows: Vec<SegmentRow>| {
            rows.sort_by(|a, b| {
                (report_order(&a.name), &a.name).cmp(&(report_order(&b.name), &b.name))
            });
            rows.into_iter()
                .map(|r| SegmentShare::of(r, total_revenue))
                .collect()
        };
        let value_curve = value_curve(&scores.value_percentiles);
        Ok(Segments {
            model,
            segments: shares(segments),
            value_tiers: shares(value_tiers),
            value_curve,
        })
    }
}

/// [`project`] on a blocking thread: a forecast over many cohort histories
/// is CPU work that must not hold up an async worker (there may be only
/// one, `CLVD_WORKER_THREADS`), where it would stall every other call.
/// `Err` is the report's forecast note.
async fn project_off_workers(
    range: CohortRange,
    fitted: FittedModels,
    histories: Vec<CohortHistory>,
) -> Result<std::collections::HashMap<(NaiveDate, u32), Projection>, String> {
    match tokio::task::spawn_blocking(move || project(&range, &fitted, &histories)).await {
        Ok(projected) => projected.map_err(|e| format!("the active model cannot forecast: {e}")),
        // A panic is the caller's, as if it had run in place (the detach
        // layer answers INTERNAL).
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err("the forecast was not computed: the server is shutting down".to_owned()),
    }
}

/// Expected revenue of each cohort in each period after as_of: per
/// customer history, expected purchase occasions in the period's days
/// (E[X(b)] − E[X(a)], days counted from as_of's day) × expected spend per
/// occasion, summed over the cohort.
fn project(
    range: &CohortRange,
    fitted: &FittedModels,
    histories: &[CohortHistory],
) -> Result<std::collections::HashMap<(NaiveDate, u32), Projection>, ModelError> {
    let clv = clv_model(fitted)?;
    let g = range.granularity;
    let today = range.as_of_day;
    let mut out = std::collections::HashMap::new();
    for h in histories {
        let summary = history_summary(h.occasions, (h.first_day, h.last_day), h.repeat_net, today)?;
        let spend = clv.spend.expected_spend(&summary)?;
        let customers = h.customers as f64;
        for k in 0..range.periods {
            let start = g.add(h.cohort, k);
            if start <= today {
                continue;
            }
            let a = (start - today).num_days() as f64;
            let b = (g.add(h.cohort, k + 1) - today).num_days() as f64;
            let purchases = clv.purchases.expected_purchases(&summary, b)
                - clv.purchases.expected_purchases(&summary, a);
            let p = out.entry((h.cohort, k)).or_insert(Projection::default());
            p.purchases += customers * purchases;
            p.revenue_nanos += customers * purchases * spend * 1e9;
        }
    }
    Ok(out)
}
