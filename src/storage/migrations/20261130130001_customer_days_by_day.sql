-- The loyalty summary reads the day rows of its period only (and those on
-- or after its end), not every customer's every day: an index by day.
-- customer_id and net_nanos are carried in it so that the read is an
-- index-only scan where the table's pages are all-visible. net_nanos
-- changes when a purchase on an existing occasion or a refund lands, so
-- those updates are no longer HOT (they add an entry to each index).
-- Under Citus the index follows the distributed table (shards by
-- customer_id); it is not unique, so it needs no distribution column.
CREATE INDEX customer_days_by_day ON customer_days (day) INCLUDE (customer_id, net_nanos);
