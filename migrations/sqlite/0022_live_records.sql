-- The records gone from their source, by source. Every incremental run counts a source's records
-- not gone (the input guards weigh a read of a few changes against the source's whole count): all
-- of them by the primary key's index, less these, both without reading a table page. (An index
-- of the records not gone would be taken by SQLite for every other lookup of records not gone,
-- in place of the primary key.)
CREATE INDEX source_records_gone ON source_records (source) WHERE gone_at IS NOT NULL;
