-- Correlation keys for configured matching rules ([identity] match_on).
ALTER TABLE source_records ADD COLUMN email TEXT;
ALTER TABLE source_records ADD COLUMN eppn TEXT;
CREATE INDEX source_records_email ON source_records(email);
CREATE INDEX source_records_eppn ON source_records(eppn);
