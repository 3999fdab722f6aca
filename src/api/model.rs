//! clv.v1.ModelService over the [`Models`] use-case.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::{
    convert::{
        criterion, families, family, optional_past_instant, page_size, past_instant, timestamp,
    },
    layers::detach::CallerGone,
    pb,
    status::invalid_argument,
};
use crate::{
    domain::{
        FamilyCandidate, FieldViolation, ModelVersion, PurchaseFamily, PurchaseParameters,
        SpendParameters,
    },
    service::{Comparison, FamilyHoldout, FitChoice, Models, PageTokenKeys},
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

/// The time unit answers are given in (models are fitted in days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Day,
    Week,
}

impl Unit {
    fn parse(raw: i32) -> Result<Unit, FieldViolation> {
        match pb::TimeUnit::try_from(raw) {
            Ok(pb::TimeUnit::Unspecified | pb::TimeUnit::Day) => Ok(Unit::Day),
            Ok(pb::TimeUnit::Week) => Ok(Unit::Week),
            Err(_) => Err(FieldViolation::new(
                "time_unit",
                format!("unknown value {raw}: use TIME_UNIT_DAY or TIME_UNIT_WEEK"),
            )),
        }
    }

    fn days(self) -> f64 {
        match self {
            Unit::Day => 1.0,
            Unit::Week => 7.0,
        }
    }

    fn pb(self) -> i32 {
        let unit = match self {
            Unit::Day => pb::TimeUnit::Day,
            Unit::Week => pb::TimeUnit::Week,
        };
        unit as i32
    }

    /// A family's parameters (or standard errors) in its message, with
    /// alpha (and beta) per this unit.
    fn purchases(self, p: &PurchaseParameters) -> FamilyParameters {
        let [r, alpha_days, third, fourth] = p.values;
        let alpha = alpha_days / self.days();
        match p.family {
            PurchaseFamily::BgNbd => FamilyParameters::Bg(pb::BgNbdParameters {
                r,
                alpha,
                a: third,
                b: fourth,
            }),
            PurchaseFamily::MbgNbd => FamilyParameters::Mbg(pb::MbgNbdParameters {
                r,
                alpha,
                a: third,
                b: fourth,
            }),
            PurchaseFamily::ParetoNbd => FamilyParameters::Pareto(pb::ParetoNbdParameters {
                r,
                alpha,
                s: third,
                beta: fourth / self.days(),
            }),
        }
    }

    /// A log-likelihood in days, in this unit: rescaling time by c
    /// multiplies each customer's likelihood by c^x (λ^x), so
    /// LL(unit) = LL(days) + Σx·ln c.
    fn log_likelihood(self, days: f64, repeat_occasions: i64) -> f64 {
        days + repeat_occasions as f64 * self.days().ln()
    }
}

/// One family's parameters as the API carries them.
enum FamilyParameters {
    Bg(pb::BgNbdParameters),
    Mbg(pb::MbgNbdParameters),
    Pareto(pb::ParetoNbdParameters),
}

impl FamilyParameters {
    fn bgnbd(self) -> Option<pb::BgNbdParameters> {
        match self {
            FamilyParameters::Bg(p) => Some(p),
            _ => None,
        }
    }

    fn mbgnbd(self) -> Option<pb::MbgNbdParameters> {
        match self {
            FamilyParameters::Mbg(p) => Some(p),
            _ => None,
        }
    }

    fn pareto_nbd(self) -> Option<pb::ParetoNbdParameters> {
        match self {
            FamilyParameters::Pareto(p) => Some(p),
            _ => None,
        }
    }
}

/// One family fitted for a version, in `unit`; `active_family` is the
/// family the version activated (none for a failed version).
fn candidate(
    c: &FamilyCandidate,
    unit: Unit,
    repeat_occasions: i64,
    active_family: Option<PurchaseFamily>,
) -> pb::ModelCandidate {
    let mut out = pb::ModelCandidate {
        family: family(c.family) as i32,
        ..Default::default()
    };
    match &c.outcome {
        Ok(fit) => {
            let params = || unit.purchases(&fit.params);
            out.bgnbd = params().bgnbd();
            out.mbgnbd = params().mbgnbd();
            out.pareto_nbd = params().pareto_nbd();
            let ll = unit.log_likelihood(fit.log_likelihood_days, repeat_occasions);
            // AIC and BIC shift by −2 × the log-likelihood's shift.
            let shift = -2.0 * (ll - fit.log_likelihood_days);
            out.log_likelihood = ll;
            out.aic = fit.aic_days + shift;
            out.bic = fit.bic_days + shift;
            out.converged = fit.converged;
            out.selected = active_family == Some(c.family);
            out.holdout = fit.holdout.map(|h| pb::CandidateHoldout {
                holdout_days: h.holdout_days,
                mean_absolute_error_per_customer: h.mean_absolute_error,
                correlation: h.correlation,
            });
        }
        Err(reason) => out.failure = reason.to_string(),
    }
    out
}

/// One family's calibration fit and holdout figures, in `unit`.
fn family_evaluation(f: &FamilyHoldout, unit: Unit, repeat_occasions: i64) -> pb::FamilyEvaluation {
    let mut out = pb::FamilyEvaluation {
        family: family(f.family) as i32,
        ..Default::default()
    };
    match &f.outcome {
        Ok((fit, figures)) => {
            let c = candidate(
                &FamilyCandidate {
                    family: f.family,
                    outcome: Ok(*fit),
                },
                unit,
                repeat_occasions,
                None,
            );
            out.bgnbd = c.bgnbd;
            out.mbgnbd = c.mbgnbd;
            out.pareto_nbd = c.pareto_nbd;
            out.log_likelihood = c.log_likelihood;
            out.aic = c.aic;
            out.bic = c.bic;
            out.actual = figures.actual;
            out.predicted = figures.predicted;
            out.mean_absolute_error_per_customer = figures.mean_absolute_error;
            out.correlation = figures.correlation;
        }
        Err(reason) => out.failure = reason.to_string(),
    }
    out
}

fn comparison(c: Comparison) -> pb::HoldoutComparison {
    pb::HoldoutComparison {
        repeat_occasions: c.repeat_occasions as i64,
        and_more: c.and_more,
        customers: c.customers as i64,
        actual: c.actual,
        predicted: c.predicted,
        absolute_error: c.absolute_error,
        percentage_error: c.percentage_error,
        actual_per_customer: c.actual_per_customer,
        predicted_per_customer: c.predicted_per_customer,
    }
}

fn to_pb(m: &ModelVersion, unit: Unit, active: Option<i64>) -> pb::Model {
    let mut out = pb::Model {
        version: m.version,
        created_at: Some(timestamp(m.created_at)),
        as_of: Some(timestamp(m.fit.as_of)),
        time_unit: unit.pb(),
        customers: m.fit.customers,
        spend_customers: m.fit.spend_customers,
        fit_duration: prost_types::Duration::try_from(m.fit.fit_duration).ok(),
        active: active == Some(m.version),
        ..Default::default()
    };
    match &m.fit.outcome {
        Ok(f) => {
            out.state = pb::ModelState::Succeeded as i32;
            let gg = |s: &SpendParameters| pb::GammaGammaParameters {
                p: s.p,
                q: s.q,
                gamma: s.gamma,
            };
            out.family = family(f.purchases.family) as i32;
            out.selection = f
                .selected_by
                .map(|s| s.name().to_owned())
                .unwrap_or_default();
            let params = || unit.purchases(&f.purchases);
            out.bgnbd = params().bgnbd();
            out.mbgnbd = params().mbgnbd();
            out.pareto_nbd = params().pareto_nbd();
            let errors = || f.purchases_standard_errors.map(|p| unit.purchases(&p));
            out.bgnbd_standard_errors = errors().and_then(FamilyParameters::bgnbd);
            out.mbgnbd_standard_errors = errors().and_then(FamilyParameters::mbgnbd);
            out.pareto_nbd_standard_errors = errors().and_then(FamilyParameters::pareto_nbd);
            out.gamma_gamma = Some(gg(&f.spend));
            out.gamma_gamma_standard_errors = f.spend_standard_errors.as_ref().map(gg);
            out.log_likelihood = unit.log_likelihood(f.log_likelihood_days, m.fit.repeat_occasions);
            out.gamma_gamma_log_likelihood = f.spend_log_likelihood;
            out.frequency_spend_correlation = f.frequency_spend_correlation;
            out.converged = f.converged;
            out.iterations = f.iterations as i64;
        }
        Err(reason) => {
            out.state = pb::ModelState::Failed as i32;
            out.failure = reason.to_string();
        }
    }
    let active_family = m.fitted().map(|f| f.purchases.family);
    out.candidates = m
        .fit
        .candidates
        .iter()
        .map(|c| candidate(c, unit, m.fit.repeat_occasions, active_family))
        .collect();
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
        let pb::FitModelRequest {
            as_of,
            time_unit,
            families: raw_families,
            selection,
        } = request.into_inner();
        let mut violations = Vec::new();
        let now = Utc::now();
        let as_of = optional_past_instant("as_of", as_of, now, &mut violations);
        let unit = Unit::parse(time_unit).map_err(|v| violations.push(v)).ok();
        let families = families("families", &raw_families)
            .map_err(|v| violations.extend(v))
            .ok();
        let criterion = criterion("selection", selection)
            .map_err(|v| violations.push(v))
            .ok();
        let (Some(as_of), Some(unit), Some(families), Some(criterion), true) =
            (as_of, unit, families, criterion, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let choice = FitChoice {
            families,
            criterion,
        };
        let fitted = self
            .models
            .fit(as_of.unwrap_or(now), &choice, caller.token())
            .await?;
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
            families: raw_families,
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
        let unit = Unit::parse(time_unit).map_err(|v| violations.push(v)).ok();
        let families = families("families", &raw_families)
            .map_err(|v| violations.extend(v))
            .ok();
        let (Some(calibration), Some(holdout), Some(unit), Some(families), true) =
            (calibration, holdout, unit, families, violations.is_empty())
        else {
            return Err(invalid_argument(&violations));
        };
        let e = self
            .models
            .evaluate(calibration, holdout, &families)
            .await?;
        let p = e.fit.params;
        Ok(Response::new(pb::ModelEvaluation {
            calibration_end: Some(timestamp(calibration)),
            holdout_end: Some(timestamp(holdout)),
            holdout_days: e.comparison.holdout_days,
            time_unit: unit.pb(),
            bgnbd: unit
                .purchases(&PurchaseParameters::bgnbd(p.r(), p.alpha(), p.a(), p.b()))
                .bgnbd(),
            log_likelihood: unit.log_likelihood(e.fit.report.log_likelihood, e.repeat_occasions),
            customers: e.comparison.customers as i64,
            total: Some(comparison(e.total())),
            by_calibration_repeat_occasions: e
                .by_repeat_occasions()
                .into_iter()
                .map(comparison)
                .collect(),
            mean_absolute_error_per_customer: e.comparison.mean_absolute_error,
            families: e
                .families
                .iter()
                .map(|f| family_evaluation(f, unit, e.repeat_occasions))
                .collect(),
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        let pb::GetModelRequest { version, time_unit } = request.into_inner();
        let unit = Unit::parse(time_unit).map_err(|v| invalid_argument(&[v]))?;
        if version < 0 {
            return Err(invalid_argument(&[FieldViolation::new(
                "version",
                "must be >= 0 (0: the active model)",
            )]));
        }
        let (model, active) = self.models.get((version > 0).then_some(version)).await?;
        Ok(Response::new(to_pb(&model, unit, active)))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let pb::ListModelsRequest {
            page_size: raw_size,
            page_token,
            time_unit,
        } = request.into_inner();
        let mut violations = Vec::new();
        let size = page_size(raw_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &mut violations);
        let unit = Unit::parse(time_unit).map_err(|v| violations.push(v)).ok();
        let (Some(size), Some(unit), true) = (size, unit, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        let page = self
            .models
            .list(&self.token_keys, &page_token, size)
            .await?;
        Ok(Response::new(pb::ListModelsResponse {
            models: page
                .models
                .iter()
                .map(|m| to_pb(m, unit, page.active))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
