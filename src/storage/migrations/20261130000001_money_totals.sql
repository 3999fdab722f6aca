-- Totals in numeric: a sum of amounts must never overflow.
--
-- One transaction's amount stays bigint nanos (at most 1e9 units, 1e18
-- nanos, well inside bigint). Every column that holds a sum of amounts
-- becomes numeric (integer nanos, exact, no fixed bound): bigint nanos end
-- at 9.2e9 units, which ten of the largest purchases pass. The service
-- keeps each total within what the API's Money carries (units within
-- int64, 9.2e18 units) and rejects a call that would take one past it.
-- Each ALTER rewrites its table once, under an exclusive lock: on a large
-- deployment, run `clvd migrate` in a quiet window.

ALTER TABLE customers
    ALTER COLUMN net_revenue_nanos  TYPE numeric,
    ALTER COLUMN repeat_value_nanos TYPE numeric,
    ALTER COLUMN cost_nanos         TYPE numeric;

ALTER TABLE customer_days
    ALTER COLUMN net_nanos  TYPE numeric,
    ALTER COLUMN cost_nanos TYPE numeric;

ALTER TABLE customer_periods
    ALTER COLUMN net_nanos  TYPE numeric,
    ALTER COLUMN cost_nanos TYPE numeric;

ALTER TABLE cohort_cells
    ALTER COLUMN net_nanos  TYPE numeric,
    ALTER COLUMN cost_nanos TYPE numeric;

ALTER TABLE customer_scores
    ALTER COLUMN historical_value_nanos TYPE numeric;
