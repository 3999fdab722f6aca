-- customer_scores becomes partitioned by model version, one partition
-- (customer_scores_v<version>) per version. A fit loads its scores into a
-- fresh table with no index, builds the indexes once, and attaches it in
-- the same transaction: no row-by-row index upkeep, and dropping a
-- version's scores is dropping its table (no million-row DELETE, no dead
-- rows to vacuum). Readers see a version's partition whole or not at all.
-- Under Citus the partitioned table is distributed by customer_id like
-- before (deploy/citus.sql); its partitions follow it.
ALTER TABLE customer_scores RENAME TO customer_scores_unpartitioned;
ALTER INDEX customer_scores_pkey RENAME TO customer_scores_unpartitioned_pkey;
ALTER INDEX customer_scores_by_value_at_risk RENAME TO customer_scores_unpartitioned_by_value_at_risk;

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
    historical_value_nanos  numeric          NOT NULL,
    recency_score           smallint         NOT NULL,
    frequency_score         smallint         NOT NULL,
    monetary_score          smallint         NOT NULL,
    segment                 text             NOT NULL,
    value_tier              text             NOT NULL,
    PRIMARY KEY (customer_id, model_version)
) PARTITION BY LIST (model_version);
CREATE INDEX customer_scores_by_value_at_risk
    ON customer_scores (model_version, value_at_risk DESC, customer_id DESC);

-- The scores already stored, each version into its partition.
DO $$
DECLARE
    v bigint;
BEGIN
    FOR v IN SELECT DISTINCT model_version FROM customer_scores_unpartitioned LOOP
        EXECUTE format(
            'CREATE TABLE customer_scores_v%s PARTITION OF customer_scores FOR VALUES IN (%s)', v, v);
        EXECUTE format(
            'INSERT INTO customer_scores_v%s SELECT * FROM customer_scores_unpartitioned
              WHERE model_version = %s', v, v);
    END LOOP;
END $$;

DROP TABLE customer_scores_unpartitioned;
