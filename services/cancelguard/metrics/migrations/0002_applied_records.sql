-- An exactly-once audit per partition: how many records the metrics service has applied (moved its
-- offset past) since the row was created. With every record applied exactly once it equals
-- next_offset minus the offset the partition started at (0 for a new topic).
ALTER TABLE consumer_offsets ADD COLUMN applied_records bigint NOT NULL DEFAULT 0;
