-- Purchase families: each model version records the family it activated
-- (bg_nbd, mbg_nbd or pareto_nbd) and how it was chosen, and every family
-- fitted for it (its candidates). Versions stored before this migration
-- read as BG/NBD with one candidate, built from the row itself.
--
-- models.r, alpha_days hold the activated family's purchase-rate
-- parameters; a, b (and se_a, se_b) BG/NBD's or MBG/NBD's dropout
-- parameters; s, beta_days (and se_s, se_beta_days) Pareto/NBD's.
ALTER TABLE models
    -- NULL on a failed version (no family was activated)
    ADD COLUMN family text
        CHECK (family IN ('bg_nbd', 'mbg_nbd', 'pareto_nbd')),
    ADD COLUMN selected_by text
        CHECK (selected_by IN ('bic', 'aic', 'requested', 'pinned')),
    ADD COLUMN s double precision,
    ADD COLUMN beta_days double precision,
    ADD COLUMN se_s double precision,
    ADD COLUMN se_beta_days double precision,
    -- covariance of the activated family's log-parameters ln(params), time
    -- scales in days, 16 values row by row in the family's parameter order;
    -- NULL when the fit did not provide it
    ADD COLUMN log_parameter_covariance double precision[]
        CHECK (cardinality(log_parameter_covariance) = 16);

UPDATE models SET family = 'bg_nbd' WHERE state = 'succeeded';

ALTER TABLE models
    ADD CONSTRAINT models_family_when_succeeded
        CHECK ((state = 'succeeded') = (family IS NOT NULL));

-- One row per family fitted for a version (failed ones included, with
-- why). A small table read with its version; like models, under Citus a
-- reference table (copied to every node), so its key need not include
-- customer_id.
CREATE TABLE model_candidates (
    version             bigint  NOT NULL REFERENCES models (version),
    family              text    NOT NULL
        CHECK (family IN ('bg_nbd', 'mbg_nbd', 'pareto_nbd')),
    -- the family's four parameters in its order (BG/NBD, MBG/NBD: r,
    -- alpha, a, b; Pareto/NBD: r, alpha, s, beta), time scales in days;
    -- NULL when it failed
    p1                  double precision,
    p2                  double precision,
    p3                  double precision,
    p4                  double precision,
    -- log-likelihood with time in days; aic = 2k - 2LL, bic = k ln(n) - 2LL
    log_likelihood_days double precision,
    aic_days            double precision,
    bic_days            double precision,
    converged           boolean,
    iterations          bigint,
    failure             text,
    PRIMARY KEY (version, family),
    CHECK ((failure IS NULL) = (p1 IS NOT NULL AND p2 IS NOT NULL AND p3 IS NOT NULL
                                AND p4 IS NOT NULL AND log_likelihood_days IS NOT NULL))
);
