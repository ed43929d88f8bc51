-- The audit table partitioned by month of its timestamp (time_us, UTC), so
-- that `passerelle audit purge` drops whole months instead of deleting rows
-- one by one. Partitions are named audit_events_YYYY_MM; the gateway creates
-- the current and the next month's at start and as months turn
-- (src/audit/partitions.rs). A DEFAULT partition catches an event outside
-- every month created (a clock far off): an event is never refused for it.
--
-- A partitioned table's primary key must include the partition key: it is
-- (seq, time_us). seq stays unique in practice: only the chain writer inserts,
-- under the chain lock, each new seq after the head; the hash chain detects
-- any duplicate or gap (`audit verify`).
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER INDEX audit_events_time RENAME TO audit_events_unpartitioned_time;
ALTER INDEX audit_events_subject RENAME TO audit_events_unpartitioned_subject;
ALTER INDEX audit_events_dataset RENAME TO audit_events_unpartitioned_dataset;
ALTER INDEX audit_events_pkey RENAME TO audit_events_unpartitioned_pkey;

CREATE TABLE audit_events (LIKE audit_events_unpartitioned INCLUDING DEFAULTS)
    PARTITION BY RANGE (time_us);
ALTER TABLE audit_events ADD PRIMARY KEY (seq, time_us);
CREATE INDEX audit_events_time ON audit_events (time_us);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_dataset ON audit_events (dataset, seq);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- One partition per month from the oldest event's to the next month (month
-- arithmetic on UTC wall-clock timestamps, whatever the session's zone).
DO $$
DECLARE
    month timestamp;
    last_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month';
BEGIN
    SELECT date_trunc('month', to_timestamp(min(time_us) / 1000000.0) AT TIME ZONE 'UTC')
      INTO month
      FROM audit_events_unpartitioned;
    month := least(coalesce(month, last_month), last_month - interval '1 month');
    WHILE month <= last_month LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%s) TO (%s)',
            'audit_events_' || to_char(month, 'YYYY_MM'),
            (extract(epoch FROM month AT TIME ZONE 'UTC') * 1000000)::bigint,
            (extract(epoch FROM (month + interval '1 month') AT TIME ZONE 'UTC') * 1000000)::bigint
        );
        month := month + interval '1 month';
    END LOOP;
END
$$;

INSERT INTO audit_events SELECT * FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;
