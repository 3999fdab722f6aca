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
