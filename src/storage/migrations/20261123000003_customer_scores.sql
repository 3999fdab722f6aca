-- Every customer's scores under a model version, written when the version
-- is fitted (the newest two versions are kept). They order
-- ListAtRiskCustomers, whose pages stay stable while new transactions
-- arrive because a version's rows never change.
CREATE TABLE customer_scores (
    customer_id             text             NOT NULL,
    model_version           bigint           NOT NULL,
    probability_alive       double precision NOT NULL,
    churn_risk              double precision NOT NULL,
    probability_no_purchase double precision NOT NULL,
    expected_purchases      double precision NOT NULL,
    predicted_value         double precision NOT NULL,
    -- churn_risk x the value expected if the customer stays
    value_at_risk           double precision NOT NULL,
    historical_value_nanos  bigint           NOT NULL,
    recency_score           smallint         NOT NULL,
    frequency_score         smallint         NOT NULL,
    monetary_score          smallint         NOT NULL,
    segment                 text             NOT NULL,
    value_tier              text             NOT NULL,
    PRIMARY KEY (customer_id, model_version)
);
CREATE INDEX customer_scores_by_value_at_risk
    ON customer_scores (model_version, value_at_risk DESC, customer_id DESC);
