-- What a report computes once per model version and keeps.
--
-- model_evaluations: EvaluateModel's answer (a calibration fit and its
--   holdout comparison, as JSON written and read by the service) per
--   active model version, calibration and holdout business day and
--   families compared. Computed on the first such call while the version
--   is active; a new version is a new key, so its first call computes
--   afresh. Concurrent first calls may both compute; the first to insert
--   wins (ON CONFLICT DO NOTHING) and both answers are equal.
-- score_summaries, score_segments, score_value_percentiles: GetSegmentReport's
--   and GetLoyaltySummary's aggregates of a version's customer_scores
--   partition (which never changes once attached): how many customers and
--   their mean predicted value; per segment and value tier the customers,
--   historical revenue, mean value and mean churn risk; the customers
--   ranked by total value in up to 100 equal groups. Written in one
--   transaction whose first insert (score_summaries) is the version's
--   claim: a concurrent first call waits for it and then reads.
--
-- None holds customer data (sums over customers, keyed by version): under
-- Citus they are reference tables (deploy/citus.sql), like models.
CREATE TABLE model_evaluations (
    model_version   bigint      NOT NULL REFERENCES models (version),
    calibration_day date        NOT NULL,
    holdout_day     date        NOT NULL,
    -- the families compared besides BG/NBD, by name, comma-separated in
    -- the service's order ('' for none)
    families        text        NOT NULL,
    evaluation      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, calibration_day, holdout_day, families)
);

CREATE TABLE score_summaries (
    model_version        bigint           NOT NULL PRIMARY KEY REFERENCES models (version),
    customers            bigint           NOT NULL,
    -- NULL when no customer was scored
    mean_predicted_value double precision,
    created_at           timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE score_segments (
    model_version      bigint           NOT NULL REFERENCES score_summaries (model_version),
    -- 'segment' or 'value_tier'
    dimension          text             NOT NULL,
    name               text             NOT NULL,
    customers          bigint           NOT NULL,
    revenue_nanos      numeric          NOT NULL,
    -- mean of historical + predicted value, currency units
    average_value      double precision NOT NULL,
    average_churn_risk double precision NOT NULL,
    PRIMARY KEY (model_version, dimension, name)
);

CREATE TABLE score_value_percentiles (
    model_version bigint           NOT NULL REFERENCES score_summaries (model_version),
    -- 1 (highest total value) .. 100
    percentile    integer          NOT NULL,
    customers     bigint           NOT NULL,
    -- their total value (historical + predicted), currency units
    value         double precision NOT NULL,
    PRIMARY KEY (model_version, percentile)
);
