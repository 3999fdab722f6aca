-- Score intervals: the covariance of the Gamma-Gamma log-parameters
-- ln(p, q, gamma) of a version's spend fit, 9 values row by row, kept
-- beside log_parameter_covariance (the purchase family's). NULL on
-- versions stored before this migration and when the fit could not
-- estimate it: such versions are served without spend and value
-- intervals. models is a reference table under Citus (deploy/citus.sql).
ALTER TABLE models
    ADD COLUMN spend_log_parameter_covariance double precision[]
        CHECK (cardinality(spend_log_parameter_covariance) = 9);
