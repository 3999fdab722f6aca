//! clv.v1.ModelService over the [`Models`] use-case.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tonic::{Code, Request, Response, Status};

use super::{
    convert::{past_instant, timestamp},
    layers::detach::CallerGone,
    pb,
    status::{error, invalid_argument},
};
use crate::{
    domain::{FieldViolation, ModelVersion, ModelsCursor},
    service::{Models, ModelsError, PageTokenKeys},
};

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;

pub struct ModelApi {
    models: Arc<Models>,
    /// Signs and checks ListModels page tokens.
    token_keys: Arc<PageTokenKeys>,
}

impl ModelApi {
    pub fn new(models: Arc<Models>, token_keys: Arc<PageTokenKeys>) -> Self {
        Self { models, token_keys }
    }

    pub fn into_server(self) -> pb::model_service_server::ModelServiceServer<Self> {
        pb::model_service_server::ModelServiceServer::new(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Day,
    Week,
}

fn unit(raw: i32) -> Result<Unit, FieldViolation> {
    match pb::TimeUnit::try_from(raw) {
        Ok(pb::TimeUnit::Unspecified | pb::TimeUnit::Day) => Ok(Unit::Day),
        Ok(pb::TimeUnit::Week) => Ok(Unit::Week),
        Err(_) => Err(FieldViolation::new(
            "time_unit",
            format!("unknown value {raw}: use TIME_UNIT_DAY or TIME_UNIT_WEEK"),
        )),
    }
}

impl From<ModelsError> for Status {
    fn from(e: ModelsError) -> Self {
        match e {
            ModelsError::NotFound(m) => error(Code::NotFound, m),
            ModelsError::FitFailed { version, reason } => error(Code::FailedPrecondition, format!(
                "the data cannot support a fit (recorded as failed version {version}; the active model is unchanged): {reason}"
            )),
            ModelsError::CannotEvaluate(m) => error(Code::FailedPrecondition, m),
            e @ ModelsError::Abandoned => error(Code::Cancelled, e.to_string()),
            ModelsError::Storage(s) => s.into(),
        }
    }
}

/// A required timestamp, not in the future.
fn comparison(
    repeat_occasions: u64,
    and_more: bool,
    customers: u64,
    actual: f64,
    predicted: f64,
) -> pb::HoldoutComparison {
    let per = |v: f64| {
        if customers > 0 {
            v / customers as f64
        } else {
            0.0
        }
    };
    pb::HoldoutComparison {
        repeat_occasions: repeat_occasions as i64,
        and_more,
        customers: customers as i64,
        actual,
        predicted,
        absolute_error: (predicted - actual).abs(),
        percentage_error: if actual > 0.0 {
            (predicted - actual) / actual * 100.0
        } else {
            0.0
        },
        actual_per_customer: per(actual),
        predicted_per_customer: per(predicted),
    }
}

fn to_pb(m: &ModelVersion, unit: Unit, active: Option<i64>) -> pb::Model {
    let scale = match unit {
        Unit::Day => 1.0,
        Unit::Week => 7.0,
    };
    let mut out = pb::Model {
        version: m.version,
        created_at: Some(timestamp(m.created_at)),
        as_of: Some(timestamp(m.fit.as_of)),
        time_unit: match unit {
            Unit::Day => pb::TimeUnit::Day,
            Unit::Week => pb::TimeUnit::Week,
        } as i32,
        customers: m.fit.customers,
        spend_customers: m.fit.spend_customers,
        fit_duration: prost_types::Duration::try_from(m.fit.fit_duration).ok(),
        active: active == Some(m.version),
        ..Default::default()
    };
    match &m.fit.outcome {
        Ok(f) => {
            out.state = pb::ModelState::Succeeded as i32;
            let bg = |p: &crate::domain::PurchaseParameters| pb::BgNbdParameters {
                r: p.r,
                alpha: p.alpha_days / scale,
                a: p.a,
                b: p.b,
            };
            let gg = |s: &crate::domain::SpendParameters| pb::GammaGammaParameters {
                p: s.p,
                q: s.q,
                gamma: s.gamma,
            };
            out.bgnbd = Some(bg(&f.purchases));
            out.bgnbd_standard_errors = f.purchases_standard_errors.as_ref().map(bg);
            out.gamma_gamma = Some(gg(&f.spend));
            out.gamma_gamma_standard_errors = f.spend_standard_errors.as_ref().map(gg);
            // Rescaling time by c multiplies each customer's likelihood by
            // c^x (λ^x), so LL(unit) = LL(days) + Σx·ln c.
            out.log_likelihood = f.log_likelihood_days + m.fit.repeat_occasions as f64 * scale.ln();
            out.gamma_gamma_log_likelihood = f.spend_log_likelihood;
            out.frequency_spend_correlation = f.frequency_spend_correlation;
            out.converged = f.converged;
            out.iterations = f.iterations as i64;
        }
        Err(reason) => {
            out.state = pb::ModelState::Failed as i32;
            out.failure = reason.clone();
        }
    }
    out
}

#[tonic::async_trait]
impl pb::model_service_server::ModelService for ModelApi {
    async fn fit_model(
        &self,
        request: Request<pb::FitModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        // Fired when the caller leaves: a fit still waiting for its turn
        // then gives up; one already started finishes in the background.
        let caller = request
            .extensions()
            .get::<CallerGone>()
            .cloned()
            .unwrap_or_default();
        let pb::FitModelRequest { as_of, time_unit } = request.into_inner();
        let mut violations = Vec::new();
        let now = Utc::now();
        let as_of = match as_of {
            None => Some(now),
            Some(ts) => match DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32) {
                Some(t) if !(0..1_000_000_000).contains(&ts.nanos) => {
                    violations.push(FieldViolation::new("as_of.nanos", "must be in [0, 1e9)"));
                    Some(t)
                }
                Some(t) if t > now => {
                    violations.push(FieldViolation::new("as_of", "must not be in the future"));
                    None
                }
                Some(t) => Some(t),
                None => {
                    violations.push(FieldViolation::new("as_of", "is out of range"));
                    None
                }
            },
        };
        let unit = unit(time_unit).map_err(|v| violations.push(v)).ok();
        let (Some(as_of), Some(unit), true) = (as_of, unit, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        let fitted = self.models.fit(as_of, caller.token()).await?;
        Ok(Response::new(to_pb(&fitted, unit, Some(fitted.version))))
    }

    async fn evaluate_model(
        &self,
        request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::ModelEvaluation>, Status> {
        let pb::EvaluateModelRequest {
            calibration_end,
            holdout_end,
            time_unit,
        } = request.into_inner();
        let mut violations = Vec::new();
        let now = Utc::now();
        let calibration = past_instant("calibration_end", calibration_end, now, &mut violations);
        let holdout = past_instant("holdout_end", holdout_end, now, &mut violations);
        if let (Some(c), Some(h)) = (calibration, holdout) {
            if h <= c {
                violations.push(FieldViolation::new(
                    "holdout_end",
                    "must be after calibration_end",
                ));
            }
        }
        let unit = unit(time_unit).map_err(|v| violations.push(v)).ok();
        let (Some(calibration), Some(holdout), Some(unit), true) =
            (calibration, holdout, unit, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let e = self.models.evaluate(calibration, holdout).await?;
        let scale = if unit == Unit::Week { 7.0 } else { 1.0 };
        let c = &e.comparison;
        let p = e.fit.params;
        Ok(Response::new(pb::ModelEvaluation {
            calibration_end: Some(timestamp(calibration)),
            holdout_end: Some(timestamp(holdout)),
            holdout_days: c.holdout_days,
            time_unit: match unit {
                Unit::Day => pb::TimeUnit::Day,
                Unit::Week => pb::TimeUnit::Week,
            } as i32,
            bgnbd: Some(pb::BgNbdParameters {
                r: p.r(),
                alpha: p.alpha() / scale,
                a: p.a(),
                b: p.b(),
            }),
            // As for Model: LL(unit) = LL(days) + Σx·ln(days per unit).
            log_likelihood: e.fit.report.log_likelihood + e.repeat_occasions as f64 * scale.ln(),
            customers: c.customers as i64,
            // The total: repeat_occasions and and_more do not apply.
            total: Some(comparison(
                0,
                false,
                c.customers,
                c.actual_total,
                c.predicted_total,
            )),
            by_calibration_repeat_occasions: c
                .buckets
                .iter()
                .map(|b| {
                    let n = b.customers as f64;
                    comparison(
                        b.repeat_purchases,
                        b.and_more,
                        b.customers,
                        b.actual_mean * n,
                        b.predicted_mean * n,
                    )
                })
                .collect(),
            mean_absolute_error_per_customer: c.mean_absolute_error,
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        let pb::GetModelRequest { version, time_unit } = request.into_inner();
        let unit = unit(time_unit).map_err(|v| invalid_argument(&[v]))?;
        if version < 0 {
            return Err(invalid_argument(&[FieldViolation::new(
                "version",
                "must be >= 0 (0: the active model)",
            )]));
        }
        let model = self.models.get((version > 0).then_some(version)).await?;
        let active = self.models.active_version().await?;
        Ok(Response::new(to_pb(&model, unit, active)))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let pb::ListModelsRequest {
            page_size,
            page_token: token,
            time_unit,
        } = request.into_inner();
        let mut violations = Vec::new();
        let size = match page_size {
            0 => Some(DEFAULT_PAGE_SIZE),
            n if n < 0 => {
                violations.push(FieldViolation::new("page_size", "must not be negative"));
                None
            }
            n => Some((n as usize).min(MAX_PAGE_SIZE)),
        };
        let before = if token.is_empty() {
            Some(None)
        } else {
            ModelsCursor::open(self.token_keys.key().await?, &token)
                .map(|c| Some(c.before))
                .map_err(|e| violations.push(FieldViolation::new("page_token", e.to_string())))
                .ok()
        };
        let unit = unit(time_unit).map_err(|v| violations.push(v)).ok();
        let (Some(size), Some(before), Some(unit), true) =
            (size, before, unit, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let (page, more) = self.models.list(before, size).await?;
        let active = self.models.active_version().await?;
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => ModelsCursor {
                before: last.version,
            }
            .seal(self.token_keys.key().await?),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListModelsResponse {
            models: page.iter().map(|m| to_pb(m, unit, active)).collect(),
            next_page_token,
        }))
    }
}
