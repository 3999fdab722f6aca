-- What the reports read besides purchases: customers' feedback and what
-- acquiring customers cost.

-- Survey answers. Keyed by the caller's idempotency key within the
-- customer, like transactions, so a resent answer is stored once. A
-- customer need not have purchased to answer; DeleteCustomer erases these.
CREATE TABLE feedback (
    customer_id text        NOT NULL,
    feedback_id text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- Net Promoter Score question, 0-10
    nps         smallint    CHECK (nps BETWEEN 0 AND 10),
    -- customer satisfaction, 1-5
    csat        smallint    CHECK (csat BETWEEN 1 AND 5),
    -- customer effort, 1-7
    ces         smallint    CHECK (ces BETWEEN 1 AND 7),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, feedback_id),
    CHECK (nps IS NOT NULL OR csat IS NOT NULL OR ces IS NOT NULL)
);
CREATE INDEX feedback_by_time ON feedback (occurred_at);

-- Money spent on acquiring customers over [start_time, end_time), counted
-- whole in the report period that contains start_time. Not customer data
-- (a reference table under Citus), so no customer_id.
CREATE TABLE acquisition_spend (
    spend_id     text        NOT NULL PRIMARY KEY,
    start_time   timestamptz NOT NULL,
    end_time     timestamptz NOT NULL,
    -- empty: not attributed to a channel
    channel      text        NOT NULL DEFAULT '',
    amount_nanos bigint      NOT NULL CHECK (amount_nanos >= 0),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (end_time > start_time)
);
CREATE INDEX acquisition_spend_by_start ON acquisition_spend (start_time);

-- Cohort report aggregates for "everything recorded" (no as_of), kept
-- asynchronously so that ingest only appends to a queue:
--
-- report_dirty: customers whose purchases changed since their
--   contribution was last computed. Ingest appends (no key, so no conflict
--   and no lock wait); the aggregation step takes rows off the front.
-- customer_periods: each customer's contribution per granularity and
--   period with a purchase occasion (what the step subtracts before adding
--   the recomputed one, so a backdated purchase that moves the customer to
--   an earlier cohort moves all of their contribution).
-- cohort_cells: the sums per (granularity, cohort, period): what
--   GetCohortReport reads. Only the step writes both tables, one at a time
--   (an advisory lock), so they have no hot rows under concurrent ingest.
--   No primary key: seq is unique by construction, and a key on it alone
--   could not hold once the table is distributed by customer_id (Citus
--   needs the distribution column in every unique key; deploy/citus.sql).
CREATE TABLE report_dirty (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    customer_id text NOT NULL
);
CREATE INDEX report_dirty_by_seq ON report_dirty (seq);

CREATE TABLE customer_periods (
    customer_id     text     NOT NULL,
    -- 1 = ISO week, 2 = month, 3 = quarter
    granularity     smallint NOT NULL,
    period          date     NOT NULL,
    cohort          date     NOT NULL,
    orders          bigint   NOT NULL,
    net_nanos       bigint   NOT NULL,
    cost_nanos      bigint   NOT NULL,
    uncosted        bigint   NOT NULL,
    -- 1 on the cohort period's row of a customer with >= 2 occasions
    repeat_customer smallint NOT NULL,
    PRIMARY KEY (customer_id, granularity, period)
);

CREATE TABLE cohort_cells (
    granularity      smallint NOT NULL,
    cohort           date     NOT NULL,
    period           date     NOT NULL,
    -- active customers; at period = cohort, the cohort's size
    customers        bigint   NOT NULL,
    repeat_customers bigint   NOT NULL,
    orders           bigint   NOT NULL,
    net_nanos        bigint   NOT NULL,
    cost_nanos       bigint   NOT NULL,
    uncosted         bigint   NOT NULL,
    PRIMARY KEY (granularity, cohort, period)
);

-- Customers present before this migration are queued once.
INSERT INTO report_dirty (customer_id)
SELECT customer_id FROM customers WHERE purchase_occasions > 0;
