//! The stages of a fit, timed. Each finished stage writes one log line
//! (`fit stage done`, with the stage, the version when known, the rows it
//! handled and its seconds) and one observation of the histogram
//! `clvd_fit_stage_seconds{stage}`, so that a long fit shows its progress
//! as it goes and the time of each part can be read off the metrics.

use std::time::Instant;

use prometheus::HistogramVec;

/// A part of a fit, in the order a fit runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitStage {
    /// The transactions counter and the active version.
    Prepare,
    /// Every customer's summary (for the groups and for scoring the whole
    /// base), and, on a second connection meanwhile, the grouped histories
    /// of the customers with purchases after the fit's day.
    ReadSummaries,
    /// The summaries grouped as of the fit's day (one group per distinct
    /// history), in memory.
    ReadGroups,
    /// BG/NBD and Gamma-Gamma on the groups.
    Fit,
    /// The new version's row in `models`.
    StoreVersion,
    /// Model scores, RFM quintiles, segments and tiers of every customer.
    Score,
    /// The scores into their own table, its indexes, attached.
    WriteScores,
    /// The new version made active.
    Activate,
}

impl FitStage {
    /// Every stage, in order.
    pub const ALL: [FitStage; 8] = [
        FitStage::Prepare,
        FitStage::ReadSummaries,
        FitStage::ReadGroups,
        FitStage::Fit,
        FitStage::StoreVersion,
        FitStage::Score,
        FitStage::WriteScores,
        FitStage::Activate,
    ];

    /// The `stage` label and the log field.
    pub fn name(self) -> &'static str {
        match self {
            FitStage::Prepare => "prepare",
            FitStage::ReadGroups => "read_groups",
            FitStage::Fit => "fit",
            FitStage::StoreVersion => "store_version",
            FitStage::ReadSummaries => "read_summaries",
            FitStage::Score => "score",
            FitStage::WriteScores => "write_scores",
            FitStage::Activate => "activate",
        }
    }
}

/// Where stage durations are observed: the histogram of
/// [`crate::metrics::Metrics::fit_stage_seconds`], or nowhere (the log
/// lines are written either way).
#[derive(Clone, Default)]
pub struct FitStageMetric(Option<HistogramVec>);

impl FitStageMetric {
    pub fn new(histogram: HistogramVec) -> Self {
        Self(Some(histogram))
    }
}

/// Times the stages of one fit, one after the other.
pub(super) struct StageClock<'a> {
    metric: &'a FitStageMetric,
    version: Option<i64>,
    started: Instant,
}

impl<'a> StageClock<'a> {
    pub(super) fn start(metric: &'a FitStageMetric) -> Self {
        Self {
            metric,
            version: None,
            started: Instant::now(),
        }
    }

    /// The version the fit was stored as, for the lines that follow.
    pub(super) fn version(&mut self, version: i64) {
        self.version = Some(version);
    }

    /// Ends `stage` (begun when the previous one ended), having handled
    /// `rows` rows, and starts the next.
    pub(super) fn done(&mut self, stage: FitStage, rows: usize) {
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(h) = &self.metric.0 {
            h.with_label_values(&[stage.name()]).observe(seconds);
        }
        tracing::info!(
            stage = stage.name(),
            version = self.version,
            rows,
            seconds,
            "fit stage done"
        );
        self.started = Instant::now();
    }
}
