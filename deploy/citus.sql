-- Distribute clvd's schema over a Citus cluster, by customer_id.
--
-- Run once on the coordinator, after `clvd migrate` has created the tables
-- (DATABASE_URL pointing at the coordinator):
--   clvd migrate && psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/citus.sql
-- Tables that already hold rows have them moved to the shards.
--
-- Every table of the schema must appear here, either distributed by
-- customer_id (and then each of its primary and unique keys includes
-- customer_id) or as a reference table (small, no customer data, copied to
-- every node). tests/api/schema.rs checks both against the migrated schema.

CREATE EXTENSION IF NOT EXISTS citus;

-- Customer data: distributed by customer_id, all in one co-location group,
-- so that a customer's rows of every table sit on the same node and each
-- ingest batch, score and summary query stays on one shard per customer.
SELECT create_distributed_table('customers', 'customer_id');
SELECT create_distributed_table('transactions', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('customer_days', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('customer_scores', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('feedback', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('customer_periods', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('report_dirty', 'customer_id', colocate_with => 'customers');

-- No customer_id: reference tables, copied to every node.
SELECT create_reference_table('models');
-- Each version's fitted purchase families (keyed by version).
SELECT create_reference_table('model_candidates');
SELECT create_reference_table('ingest_counters');
-- Acquisition spend per period and channel, and the cohort report's cells
-- (sums over customers, per granularity, cohort and period): small, and
-- written by one aggregation step at a time.
SELECT create_reference_table('acquisition_spend');
SELECT create_reference_table('cohort_cells');
-- Values every replica shares (the page token signing key).
SELECT create_reference_table('service_settings');
-- What is kept per model version (EvaluateModel's answers, the aggregates
-- of a version's scores): sums over customers, keyed by version.
SELECT create_reference_table('model_evaluations');
SELECT create_reference_table('score_summaries');
SELECT create_reference_table('score_segments');
SELECT create_reference_table('score_value_percentiles');
