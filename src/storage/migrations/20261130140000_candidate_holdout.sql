-- The `holdout` selection policy (CLVD_MODEL_SELECTION=holdout): each
-- candidate family may carry its holdout figures (a fit on the data before
-- the holdout, its predicted repeat purchases in the holdout against the
-- actual ones), and a version may be selected by them. NULL when the
-- policy was not `holdout` or the data allowed no holdout. model_candidates
-- stays a reference table under Citus.
ALTER TABLE model_candidates
    -- length of the holdout, days
    ADD COLUMN holdout_days        bigint,
    -- mean over customers of |predicted - actual| holdout repeat purchases
    ADD COLUMN holdout_mae         double precision,
    -- Pearson correlation over customers of predicted and actual
    ADD COLUMN holdout_correlation double precision,
    ADD CONSTRAINT model_candidates_holdout_complete
        CHECK ((holdout_days IS NULL) = (holdout_mae IS NULL)
               AND (holdout_days IS NULL) = (holdout_correlation IS NULL));

ALTER TABLE models DROP CONSTRAINT models_selected_by_check;
ALTER TABLE models ADD CONSTRAINT models_selected_by_check
    CHECK (selected_by IN ('bic', 'aic', 'holdout', 'requested', 'pinned'));
