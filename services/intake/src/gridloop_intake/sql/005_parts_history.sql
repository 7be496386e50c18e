-- The parts registry's history of a part (GET /parts/{code}/cases): cases by part code.
CREATE INDEX cases_part_code ON cases (part_code, received_at) WHERE part_code IS NOT NULL;
