-- The scoring rules (scoring.yaml) in force over time: a row each time the rules the service
-- runs on change (at start-up or on a live reload, city.updated). A period is ranked with the
-- rules in force at its end (now, while it is open), so a closed period is not re-scored by a
-- later version; POST /rankings/preview computes any period with any rule set on request.
CREATE TABLE rule_versions (
    id            bigserial   PRIMARY KEY,
    digest        text        NOT NULL,  -- sha256 of the rules' JSON
    version       text        NOT NULL,  -- the city data version ('' : CITY_DATA_DIR's)
    in_force_from timestamptz NOT NULL,
    rules         jsonb       NOT NULL
);
CREATE INDEX rule_versions_from ON rule_versions (in_force_from, id);
