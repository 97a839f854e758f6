-- Turn behavior_event into a table partitioned by month of occurred_at (PostgreSQL 12+).
-- Run it in a maintenance window (it copies every event), after a backup, with psql -v ON_ERROR_STOP=1.
-- Partitions must cover every occurred_at: create next months ahead (see docs/operations.md).
BEGIN;

CREATE TABLE behavior_event_partitioned (LIKE behavior_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (occurred_at);
-- A partitioned table's primary key must hold the partition key. A resent event has the same
-- occurred_at, so (event_id, occurred_at) still stores it once.
ALTER TABLE behavior_event_partitioned ADD PRIMARY KEY (event_id, occurred_at);
CREATE INDEX event_customer_time_p ON behavior_event_partitioned (customer_id, occurred_at);
CREATE INDEX event_unlinked_anonymous_p ON behavior_event_partitioned (anonymous_id) WHERE customer_id IS NULL;

DO $$
DECLARE
    month date := date_trunc('month', (SELECT coalesce(min(occurred_at), now()) FROM behavior_event));
    last date := date_trunc('month', now()) + interval '3 months';
BEGIN
    WHILE month < last LOOP
        EXECUTE format('CREATE TABLE behavior_event_%s PARTITION OF behavior_event_partitioned '
                       'FOR VALUES FROM (%L) TO (%L)', to_char(month, 'YYYY_MM'), month, month + interval '1 month');
        month := month + interval '1 month';
    END LOOP;
END $$;

INSERT INTO behavior_event_partitioned SELECT * FROM behavior_event;
ALTER TABLE behavior_event RENAME TO behavior_event_unpartitioned;
ALTER TABLE behavior_event_partitioned RENAME TO behavior_event;

COMMIT;
-- When the counts agree: DROP TABLE behavior_event_unpartitioned;
