//! clv.v1.ScoringService over the [`Scoring`] use-case.

use std::sync::Arc;

use chrono::Utc;
use clv_model::ScoreOptions;
use tonic::{Request, Response, Status};

use super::{
    convert,
    convert::{optional_past_instant, page_size, timestamp},
    pb,
    status::invalid_argument,
};
use crate::{
    domain::{FieldViolation, PopulationScore, Segmentation, Total},
    service::{
        AtRiskQuery, Band, Caveat, IntervalRequest, PageTokenKeys, PointInTime, Prediction, Score,
        Scoring,
    },
};

const MAX_HORIZON_MONTHS: i32 = 120;
const MAX_BATCH_IDS: usize = 1_000;
const DEFAULT_AT_RISK_PAGE: usize = 50;
const MAX_AT_RISK_PAGE: usize = 1_000;

/// Horizon and discount rate, defaulted and checked.
fn score_options(
    horizon_months: Option<i32>,
    annual_discount_rate: Option<f64>,
    violations: &mut Vec<FieldViolation>,
) -> Option<ScoreOptions> {
    let defaults = ScoreOptions::default();
    let horizon = horizon_months.unwrap_or(defaults.horizon_months as i32);
    let rate = annual_discount_rate.unwrap_or(defaults.annual_discount_rate);
    let mut ok = true;
    if !(1..=MAX_HORIZON_MONTHS).contains(&horizon) {
        violations.push(FieldViolation::new(
            "horizon_months",
            format!("must be 1 to {MAX_HORIZON_MONTHS}"),
        ));
        ok = false;
    }
    if !(0.0..1.0).contains(&rate) {
        violations.push(FieldViolation::new(
            "annual_discount_rate",
            "must be in [0, 1)",
        ));
        ok = false;
    }
    ok.then_some(ScoreOptions {
        horizon_months: horizon as u32,
        annual_discount_rate: rate,
        ..defaults
    })
}

/// The level of the score intervals: the request's, checked to lie in
/// (0, 1), or the service's.
fn interval_level(
    requested: Option<f64>,
    default: f64,
    violations: &mut Vec<FieldViolation>,
) -> Option<f64> {
    match requested {
        None => Some(default),
        Some(level) if level > 0.0 && level < 1.0 => Some(level),
        Some(_) => {
            violations.push(FieldViolation::new(
                "interval_level",
                "must be in (0, 1), e.g. 0.9 for 90 % intervals",
            ));
            None
        }
    }
}

/// `as_of` (a past instant, up to `max_future_skew` ahead of now allowed
/// for clock skew, as at ingest) and `model_version` (0: the one active
/// then), checked.
fn point_in_time(
    as_of: Option<prost_types::Timestamp>,
    model_version: i64,
    max_future_skew: chrono::Duration,
    violations: &mut Vec<FieldViolation>,
) -> Option<PointInTime> {
    let now = Utc::now() + max_future_skew;
    let as_of = optional_past_instant("as_of", as_of, now, violations);
    if model_version < 0 {
        violations.push(FieldViolation::new(
            "model_version",
            "must be a version number (above 0), or 0 for the model active at as_of",
        ));
        return None;
    }
    Some(PointInTime {
        as_of: as_of?,
        model_version: (model_version > 0).then_some(model_version),
    })
}

pub struct ScoringApi {
    scoring: Arc<Scoring>,
    currency: String,
    /// Signs and checks ListAtRiskCustomers page tokens.
    token_keys: Arc<PageTokenKeys>,
    /// How far ahead of now a point-in-time `as_of` may be (the ingest
    /// rules' clock-skew allowance).
    max_future_skew: chrono::Duration,
    /// The level of score intervals when a request names none
    /// (CLVD_INTERVAL_LEVEL).
    interval_level: f64,
}

impl ScoringApi {
    pub fn new(
        scoring: Arc<Scoring>,
        currency: String,
        token_keys: Arc<PageTokenKeys>,
        max_future_skew: chrono::Duration,
        interval_level: f64,
    ) -> Self {
        Self {
            scoring,
            currency,
            token_keys,
            max_future_skew,
            interval_level,
        }
    }

    /// One customer's score: the live path, or the point-in-time one.
    async fn score(
        &self,
        id: &crate::domain::CustomerId,
        (options, level): (ScoreOptions, IntervalRequest),
        at: PointInTime,
    ) -> Result<Score, Status> {
        Ok(if at.is_live() {
            self.scoring.score(id, options, level).await?
        } else {
            self.scoring.score_at(id, options, level, at).await?
        })
    }

    pub fn into_server(self) -> pb::scoring_service_server::ScoringServiceServer<Self> {
        pb::scoring_service_server::ScoringServiceServer::new(self)
    }

    fn exact(&self, a: Total) -> pb::Money {
        convert::money(&self.currency, a)
    }

    fn predicted(&self, v: f64) -> pb::Money {
        convert::predicted_money(&self.currency, v)
    }

    fn customer_value(&self, score: Score, options: ScoreOptions) -> pb::CustomerValue {
        let average_order_value = self.exact(score.average_order_value());
        let total_value = score.predicted_total_value().map_or_else(
            || self.exact(score.summary.net_revenue),
            |v| self.predicted(v),
        );
        let Score {
            as_of,
            summary: s,
            segmentation,
            prediction,
            look_ahead,
        } = score;
        let mut out = pb::CustomerValue {
            customer_id: s.customer_id.to_string(),
            as_of: Some(timestamp(as_of)),
            first_purchase_time: Some(timestamp(s.first_purchase_at)),
            last_purchase_time: Some(timestamp(s.last_purchase_at)),
            purchase_occasions: s.purchase_occasions,
            transaction_count: s.purchase_count + s.refund_count,
            historical_value: Some(self.exact(s.net_revenue)),
            average_order_value: Some(average_order_value),
            no_purchase_window_days: self.scoring.policy().no_purchase_window_days as i32,
            horizon_months: options.horizon_months as i32,
            annual_discount_rate: options.annual_discount_rate,
            total_value: Some(total_value),
            cohort: s.first_purchase_day.format("%Y-%m").to_string(),
            rfm: segmentation.map(|g| rfm(&g)),
            segment: segmentation
                .map(|g| g.segment.name().to_owned())
                .unwrap_or_default(),
            value_tier: value_tier(segmentation),
            ..Default::default()
        };
        match prediction {
            Ok(p) => {
                out.prediction_available = true;
                out.model_version = p.model_version;
                out.family = convert::family(p.family) as i32;
                out.probability_alive = Some(p.probability_alive);
                out.churn_risk = Some(p.churn_risk);
                out.probability_no_purchase = Some(p.probability_no_purchase);
                out.churn_risk_band = band(p.band) as i32;
                out.expected_purchases = Some(p.expected_purchases);
                out.expected_average_order_value = Some(self.predicted(p.expected_spend));
                out.predicted_value = Some(self.predicted(p.predicted_value));
                out.prediction_note = note(look_ahead, p.caveat);
                out.next_purchase = Some(next_purchase(
                    p.next_purchase,
                    self.scoring.policy().no_purchase_window_days,
                ));
                if let Some(i) = p.intervals {
                    let level = i.level;
                    out.probability_alive_interval =
                        Some(convert::interval(i.probability_alive, level));
                    out.expected_purchases_interval =
                        i.purchases.map(|p| convert::interval(p, level));
                    out.expected_purchases_mean_interval =
                        i.expected_purchases.map(|e| convert::interval(e, level));
                    out.expected_average_order_value_interval = i
                        .expected_spend
                        .map(|s| convert::money_interval(&self.currency, s, level));
                    out.predicted_value_interval = i
                        .predicted_value
                        .map(|v| convert::money_interval(&self.currency, v, level));
                }
            }
            Err(note) => out.prediction_note = note.to_string(),
        }
        out
    }

    fn churn_risk(&self, score: Score) -> pb::ChurnRisk {
        let mut out = pb::ChurnRisk {
            customer_id: score.summary.customer_id.to_string(),
            value_tier: value_tier(score.segmentation),
            no_purchase_window_days: self.scoring.policy().no_purchase_window_days as i32,
            ..Default::default()
        };
        match score.prediction {
            Ok(p @ Prediction { band: b, .. }) => {
                out.prediction_available = true;
                out.model_version = p.model_version;
                out.family = convert::family(p.family) as i32;
                out.probability_alive = p.probability_alive;
                out.churn_risk = p.churn_risk;
                out.probability_no_purchase = p.probability_no_purchase;
                out.churn_risk_band = band(b) as i32;
                out.at_risk = self.scoring.policy().at_risk(&p);
                out.predicted_value = Some(self.predicted(p.predicted_value));
                out.prediction_note = note(score.look_ahead, p.caveat);
                if let Some(i) = p.intervals {
                    let alive = i.probability_alive;
                    out.probability_alive_interval = Some(convert::interval(alive, i.level));
                    out.churn_risk_interval = Some(pb::Interval {
                        lower: 1.0 - alive.upper,
                        upper: 1.0 - alive.lower,
                        level: i.level,
                    });
                }
            }
            Err(note) => out.prediction_note = note.to_string(),
        }
        out
    }

    fn at_risk_customer(&self, s: PopulationScore) -> pb::AtRiskCustomer {
        pb::AtRiskCustomer {
            customer_id: s.customer_id.to_string(),
            churn_risk: s.churn_risk,
            probability_alive: s.probability_alive,
            probability_no_purchase: s.probability_no_purchase,
            predicted_value: Some(self.predicted(s.predicted_value)),
            value_at_risk: Some(self.predicted(s.value_at_risk)),
            historical_value: Some(self.exact(s.historical_value)),
            rfm: Some(pb::RfmScores {
                recency: s.recency_score.into(),
                frequency: s.frequency_score.into(),
                monetary: s.monetary_score.into(),
            }),
            segment: s.segment.name().into(),
            value_tier: s.value_tier.name().into(),
        }
    }
}

fn rfm(g: &Segmentation) -> pb::RfmScores {
    pb::RfmScores {
        recency: g.recency_score.into(),
        frequency: g.frequency_score.into(),
        monetary: g.monetary_score.into(),
    }
}

fn value_tier(segmentation: Option<Segmentation>) -> String {
    segmentation
        .map(|g| g.value_tier.name().to_owned())
        .unwrap_or_default()
}

/// The next-purchase figures; an infinite mean is left unset.
fn next_purchase(n: clv_model::NextPurchase, window_days: u32) -> pb::NextPurchase {
    pb::NextPurchase {
        median_days_if_alive: n.median_days_if_alive,
        mean_days_if_alive: n
            .mean_days_if_alive
            .is_finite()
            .then_some(n.mean_days_if_alive),
        probability_within_window: n.probability_within_window,
        window_days: i32::try_from(window_days).unwrap_or(i32::MAX),
    }
}

fn band(b: Band) -> pb::ChurnRiskBand {
    match b {
        Band::Low => pb::ChurnRiskBand::Low,
        Band::Medium => pb::ChurnRiskBand::Medium,
        Band::High => pb::ChurnRiskBand::High,
    }
}

#[tonic::async_trait]
impl pb::scoring_service_server::ScoringService for ScoringApi {
    async fn get_customer_value(
        &self,
        request: Request<pb::GetCustomerValueRequest>,
    ) -> Result<Response<pb::CustomerValue>, Status> {
        let pb::GetCustomerValueRequest {
            customer_id,
            horizon_months,
            annual_discount_rate,
            as_of,
            model_version,
            interval_level: requested_level,
        } = request.into_inner();
        let mut violations = Vec::new();
        let id = convert::customer_id("customer_id", &customer_id)
            .map_err(|v| violations.push(v))
            .ok();
        let options = score_options(horizon_months, annual_discount_rate, &mut violations);
        let at = point_in_time(as_of, model_version, self.max_future_skew, &mut violations);
        let level = interval_level(requested_level, self.interval_level, &mut violations);
        let (Some(id), Some(options), Some(at), Some(level), true) =
            (id, options, at, level, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let all = IntervalRequest { level, all: true };
        let score = self.score(&id, (options, all), at).await?;
        Ok(Response::new(self.customer_value(score, options)))
    }

    async fn batch_get_customer_values(
        &self,
        request: Request<pb::BatchGetCustomerValuesRequest>,
    ) -> Result<Response<pb::BatchGetCustomerValuesResponse>, Status> {
        let pb::BatchGetCustomerValuesRequest {
            customer_ids,
            horizon_months,
            annual_discount_rate,
            as_of,
            model_version,
            interval_level: requested_level,
        } = request.into_inner();
        let mut violations = Vec::new();
        if customer_ids.is_empty() || customer_ids.len() > MAX_BATCH_IDS {
            violations.push(FieldViolation::new(
                "customer_ids",
                format!(
                    "must hold 1 to {MAX_BATCH_IDS} ids, got {}",
                    customer_ids.len()
                ),
            ));
        }
        let mut ids = Vec::with_capacity(customer_ids.len());
        for (i, raw) in customer_ids.iter().enumerate() {
            match convert::customer_id(&format!("customer_ids[{i}]"), raw) {
                Ok(id) => ids.push(id),
                Err(v) => violations.push(v),
            }
        }
        let options = score_options(horizon_months, annual_discount_rate, &mut violations);
        let at = point_in_time(as_of, model_version, self.max_future_skew, &mut violations);
        let level = interval_level(requested_level, self.interval_level, &mut violations);
        let (Some(options), Some(at), Some(level), true) =
            (options, at, level, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let (scores, unknown) = if at.is_live() {
            let all = IntervalRequest { level, all: true };
            self.scoring.score_many(&ids, options, all).await?
        } else {
            let all = IntervalRequest { level, all: true };
            self.scoring.score_many_at(&ids, options, all, at).await?
        };
        Ok(Response::new(pb::BatchGetCustomerValuesResponse {
            values: scores
                .into_iter()
                .map(|s| self.customer_value(s, options))
                .collect(),
            unknown_customer_ids: unknown.into_iter().map(|id| id.to_string()).collect(),
        }))
    }

    async fn list_at_risk_customers(
        &self,
        request: Request<pb::ListAtRiskCustomersRequest>,
    ) -> Result<Response<pb::ListAtRiskCustomersResponse>, Status> {
        let pb::ListAtRiskCustomersRequest {
            page_size: raw_size,
            page_token,
            min_churn_risk,
            min_predicted_value,
        } = request.into_inner();
        let mut violations = Vec::new();
        let size = page_size(
            raw_size,
            DEFAULT_AT_RISK_PAGE,
            MAX_AT_RISK_PAGE,
            &mut violations,
        );
        if min_churn_risk.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            violations.push(FieldViolation::new("min_churn_risk", "must be in [0, 1]"));
        }
        let min_predicted_value = min_predicted_value.unwrap_or(0.0);
        if !min_predicted_value.is_finite() {
            violations.push(FieldViolation::new(
                "min_predicted_value",
                "must be a finite number",
            ));
        }
        let (Some(page_size), true) = (size, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        let query = AtRiskQuery {
            page_size,
            min_churn_risk,
            min_predicted_value,
            page_token,
        };
        let page = self.scoring.list_at_risk(&self.token_keys, query).await?;
        Ok(Response::new(pb::ListAtRiskCustomersResponse {
            customers: page
                .customers
                .into_iter()
                .map(|s| self.at_risk_customer(s))
                .collect(),
            next_page_token: page.next_page_token,
            model_version: page.version,
            family: page.family.map_or(0, |f| convert::family(f) as i32),
        }))
    }

    async fn get_churn_risk(
        &self,
        request: Request<pb::GetChurnRiskRequest>,
    ) -> Result<Response<pb::ChurnRisk>, Status> {
        let pb::GetChurnRiskRequest {
            customer_id,
            as_of,
            model_version,
            interval_level: requested_level,
        } = request.into_inner();
        let mut violations = Vec::new();
        let id = convert::customer_id("customer_id", &customer_id)
            .map_err(|v| violations.push(v))
            .ok();
        let at = point_in_time(as_of, model_version, self.max_future_skew, &mut violations);
        let level = interval_level(requested_level, self.interval_level, &mut violations);
        let (Some(id), Some(at), Some(level), true) = (id, at, level, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        let score = self
            .score(
                &id,
                (
                    ScoreOptions::default(),
                    IntervalRequest { level, all: false },
                ),
                at,
            )
            .await?;
        Ok(Response::new(self.churn_risk(score)))
    }
}

/// A prediction's note: the look-ahead of a point-in-time score and the
/// family's caveat, each said when present.
fn note(look_ahead: Option<crate::service::LookAhead>, caveat: Option<Caveat>) -> String {
    let parts: Vec<String> = look_ahead
        .map(|l| l.to_string())
        .into_iter()
        .chain(caveat.map(|c| c.to_string()))
        .collect();
    parts.join("; ")
}
