-- Fitted model versions. A small table read by every replica; under Citus
-- it is a reference table (copied to every node), so its key need not
-- include customer_id.
CREATE TABLE models (
    version                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    as_of                       timestamptz NOT NULL,
    state                       text        NOT NULL CHECK (state IN ('succeeded', 'failed')),
    failure                     text,
    customers                   bigint      NOT NULL,
    spend_customers             bigint      NOT NULL,
    -- sum of repeat occasions: converts the log-likelihood between units
    repeat_occasions            bigint      NOT NULL,
    -- BG/NBD, alpha in days
    r                           double precision,
    alpha_days                  double precision,
    a                           double precision,
    b                           double precision,
    se_r                        double precision,
    se_alpha_days               double precision,
    se_a                        double precision,
    se_b                        double precision,
    log_likelihood_days         double precision,
    iterations                  bigint,
    converged                   boolean,
    -- Gamma-Gamma, gamma in currency units
    p                           double precision,
    q                           double precision,
    gamma                       double precision,
    se_p                        double precision,
    se_q                        double precision,
    se_gamma                    double precision,
    gamma_gamma_log_likelihood  double precision,
    frequency_spend_correlation double precision,
    fit_seconds                 double precision NOT NULL,
    -- set once the version's customer scores are written: the active
    -- model is the newest activated successful version
    activated_at                timestamptz,
    -- transactions ever recorded when the fit started (ingest_counters):
    -- how much arrived since
    transactions_counter        bigint,
    CHECK ((state = 'succeeded') = (r IS NOT NULL AND p IS NOT NULL))
);
