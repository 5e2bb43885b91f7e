-- What an incremental read looks stored records up by, so that a read of a few changes reads a
-- few records and not every stored one: each tie (`Affiliation::source_id`, with its school unit
-- code and name) and each group (`GroupMembership::source_id`) that a record not gone holds.
-- Records of sources without such ids (CSV) have none. Written with the record's `data`,
-- removed when the record is marked gone; held records are looked up in `held_records` itself.
CREATE TABLE source_record_refs (
    source    TEXT NOT NULL,
    person_id TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('tie', 'group')),
    ref       TEXT NOT NULL,
    unit      TEXT,
    unit_name TEXT
);
CREATE INDEX source_record_refs_by_ref ON source_record_refs (source, kind, ref);
CREATE INDEX source_record_refs_by_person ON source_record_refs (source, person_id);
CREATE INDEX source_record_refs_by_unit ON source_record_refs (source, unit, unit_name) WHERE kind = 'tie';

INSERT INTO source_record_refs (source, person_id, kind, ref, unit, unit_name)
SELECT r.source, r.person_id, 'tie', json_extract(a.value, '$.source_id'), json_extract(a.value, '$.school_unit'),
       json_extract(a.value, '$.school_unit_name')
FROM source_records r, json_each(r.data, '$.affiliations') a
WHERE r.data IS NOT NULL AND r.gone_at IS NULL AND json_extract(a.value, '$.source_id') IS NOT NULL;

INSERT INTO source_record_refs (source, person_id, kind, ref)
SELECT r.source, r.person_id, 'group', json_extract(g.value, '$.source_id')
FROM source_records r, json_each(r.data, '$.groups') g
WHERE r.data IS NOT NULL AND r.gone_at IS NULL AND json_extract(g.value, '$.source_id') IS NOT NULL;

-- A source whose stored records are not all kept whole (stored before `data`) reads in full:
-- found at once on every incremental tick.
CREATE INDEX source_records_unwhole ON source_records (source) WHERE data IS NULL AND gone_at IS NULL;
