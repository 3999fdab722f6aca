//! clv.v1.ReportService over the [`Reports`] use-case.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use tonic::{Request, Response, Status};

use super::{
    convert::{instant, money, past_instant, predicted_money, timestamp},
    pb,
    status::invalid_argument,
};
use crate::{
    domain::{Cohort, CohortRange, FieldViolation, Granularity, Total},
    service::{Reports, SegmentShare},
};

pub struct ReportApi {
    reports: Arc<Reports>,
    currency: String,
    /// How far ahead of this server's clock a period may start (the
    /// ingest rules' clock-skew allowance).
    max_future_skew: chrono::Duration,
}

impl ReportApi {
    pub fn new(reports: Arc<Reports>, currency: String, max_future_skew: chrono::Duration) -> Self {
        Self {
            reports,
            currency,
            max_future_skew,
        }
    }

    pub fn into_server(self) -> pb::report_service_server::ReportServiceServer<Self> {
        pb::report_service_server::ReportServiceServer::new(self)
    }

    fn money(&self, a: Total) -> pb::Money {
        money(&self.currency, a)
    }

    fn day_start(&self, day: NaiveDate) -> Option<prost_types::Timestamp> {
        Some(timestamp(self.reports.start_of(day)))
    }

    fn cohort(&self, c: Cohort) -> pb::Cohort {
        let Cohort {
            start,
            size,
            periods,
            repeat_purchase_rate,
            acquisition_spend,
            cac,
            ltv_to_cac,
            payback_period,
            nps,
            nps_respondents,
        } = c;
        pb::Cohort {
            period_start: self.day_start(start),
            period_label: start.to_string(),
            size,
            periods: periods
                .into_iter()
                .map(|p| pb::CohortPeriod {
                    k: p.k,
                    period_start: self.day_start(p.start),
                    active_customers: p.active_customers,
                    retention_rate: p.retention_rate,
                    revenue: Some(self.money(p.revenue)),
                    revenue_per_customer: p.revenue_per_customer.map(|a| self.money(a)),
                    cumulative_revenue_per_customer: p
                        .cumulative_revenue_per_customer
                        .map(|a| self.money(a)),
                    orders: p.orders,
                    margin: p.margin.map(|a| self.money(a)),
                    partial: p.partial,
                    forecast: p.forecast,
                    expected_purchases: p.expected_purchases,
                })
                .collect(),
            repeat_purchase_rate,
            acquisition_spend: acquisition_spend.map(|a| self.money(a)),
            cac: cac.map(|a| self.money(a)),
            ltv_to_cac,
            payback_period,
            nps,
            nps_respondents,
        }
    }

    fn segment_row(&self, r: SegmentShare) -> pb::SegmentRow {
        pb::SegmentRow {
            average_value: Some(predicted_money(&self.currency, r.average_value)),
            share_of_revenue: r.share_of_revenue,
            name: r.name,
            customers: r.customers,
            average_churn_risk: r.average_churn_risk,
        }
    }
}

fn granularity(raw: i32) -> Result<Granularity, FieldViolation> {
    match pb::Granularity::try_from(raw) {
        Ok(pb::Granularity::Week) => Ok(Granularity::Week),
        Ok(pb::Granularity::Month) => Ok(Granularity::Month),
        Ok(pb::Granularity::Quarter) => Ok(Granularity::Quarter),
        Ok(pb::Granularity::Unspecified) => Err(FieldViolation::new(
            "granularity",
            "is required: WEEK, MONTH or QUARTER",
        )),
        Err(_) => Err(FieldViolation::new(
            "granularity",
            format!("unknown value {raw}: must be WEEK, MONTH or QUARTER"),
        )),
    }
}

fn granularity_pb(g: Granularity) -> pb::Granularity {
    match g {
        Granularity::Week => pb::Granularity::Week,
        Granularity::Month => pb::Granularity::Month,
        Granularity::Quarter => pb::Granularity::Quarter,
    }
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportApi {
    async fn get_cohort_report(
        &self,
        request: Request<pb::GetCohortReportRequest>,
    ) -> Result<Response<pb::CohortReport>, Status> {
        let pb::GetCohortReportRequest {
            granularity: raw_granularity,
            first_cohort,
            last_cohort,
            as_of,
            periods,
            include_forecast,
        } = request.into_inner();
        let now = Utc::now();
        let mut violations = Vec::new();
        let as_of = as_of.and_then(|t| past_instant("as_of", Some(t), now, &mut violations));
        let first = instant("first_cohort", first_cohort, &mut violations);
        let last = last_cohort.and_then(|t| instant("last_cohort", Some(t), &mut violations));
        let day = |t: Option<DateTime<Utc>>| t.map(|t| self.reports.day(t));
        let range = CohortRange::parse(
            granularity(raw_granularity),
            day(first),
            day(last),
            self.reports.day(as_of.unwrap_or(now)),
            periods,
        );
        let range = match range {
            Ok(r) if violations.is_empty() => r,
            Ok(_) => return Err(invalid_argument(&violations)),
            Err(vs) => {
                // A field already reported (missing or malformed) is named once.
                for v in vs {
                    if !violations
                        .iter()
                        .any(|seen| seen.field.starts_with(&v.field))
                    {
                        violations.push(v);
                    }
                }
                return Err(invalid_argument(&violations));
            }
        };
        let report = self
            .reports
            .cohort_report(&range, as_of, include_forecast)
            .await?;
        Ok(Response::new(pb::CohortReport {
            granularity: granularity_pb(range.granularity) as i32,
            as_of: Some(timestamp(report.as_of)),
            time_zone: self.reports.time_zone().name().to_owned(),
            model_version: report.model_version.unwrap_or(0),
            forecast_note: report.forecast_note.unwrap_or_default(),
            cohorts: report.cohorts.into_iter().map(|c| self.cohort(c)).collect(),
        }))
    }

    async fn get_loyalty_summary(
        &self,
        request: Request<pb::GetLoyaltySummaryRequest>,
    ) -> Result<Response<pb::LoyaltySummary>, Status> {
        let pb::GetLoyaltySummaryRequest {
            start_time,
            end_time,
        } = request.into_inner();
        let mut violations = Vec::new();
        let start = instant("start_time", start_time, &mut violations);
        if let Some(s) = start.filter(|s| *s > Utc::now() + self.max_future_skew) {
            violations.push(FieldViolation::new(
                "start_time",
                format!(
                    "must not be in the future: {s} is after now (plus {} h of clock skew)",
                    self.max_future_skew.num_hours()
                ),
            ));
        }
        let start = start.map(|t| self.reports.day(t));
        let end = instant("end_time", end_time, &mut violations).map(|t| self.reports.day(t));
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                violations.push(FieldViolation::new(
                    "end_time",
                    "must be on a later business day than start_time",
                ));
            }
        }
        let (Some(start), Some(end), true) = (start, end, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        let l = self.reports.loyalty(start, end).await?;
        Ok(Response::new(pb::LoyaltySummary {
            start_time: self.day_start(start),
            end_time: self.day_start(end),
            time_zone: self.reports.time_zone().name().to_owned(),
            customers: l.customers,
            new_customers: l.new_customers,
            active_customers: l.active_customers,
            retention_rate: l.retention_rate,
            churn_rate: l.churn_rate,
            repeat_purchase_rate: l.repeat_purchase_rate,
            average_historical_clv: l.average_historical_clv.map(|a| self.money(a)),
            average_predicted_clv: l
                .average_predicted_clv
                .map(|(v, _)| predicted_money(&self.currency, v)),
            cac: l.cac.map(|a| self.money(a)),
            ltv_to_cac: l.ltv_to_cac,
            nps: l.nps,
            csat: l.csat,
            ces: l.ces,
            top_20_percent_revenue_share: l.top_20_percent_revenue_share,
            acquisition_spend: Some(self.money(l.acquisition_spend)),
            revenue: Some(self.money(l.revenue)),
            model_version: l.average_predicted_clv.map_or(0, |(_, v)| v),
        }))
    }

    async fn get_segment_report(
        &self,
        request: Request<pb::GetSegmentReportRequest>,
    ) -> Result<Response<pb::SegmentReport>, Status> {
        let pb::GetSegmentReportRequest {} = request.into_inner();
        let s = self.reports.segments().await?;
        Ok(Response::new(pb::SegmentReport {
            model_version: s.model.version,
            model_as_of: Some(timestamp(s.model.fit.as_of)),
            segments: s
                .segments
                .into_iter()
                .map(|r| self.segment_row(r))
                .collect(),
            value_tiers: s
                .value_tiers
                .into_iter()
                .map(|r| self.segment_row(r))
                .collect(),
            value_curve: s
                .value_curve
                .into_iter()
                .map(|p| pb::ValueCurvePoint {
                    customers: p.customers,
                    customer_share: p.customer_share,
                    value_share: p.value_share,
                })
                .collect(),
        }))
    }
}
