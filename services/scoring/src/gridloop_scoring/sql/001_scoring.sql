-- The scoring service's own tables (runtime tables come from gridloop_runtime).

-- 事实: every case event once, keyed by its event id (`<ce-source>|<ce-id>`), so however
-- often the bus delivers it, it is counted once. The fold reads a case's facts.
CREATE TABLE facts (
    event_id    text        PRIMARY KEY,
    case_id     text        NOT NULL,
    type        text        NOT NULL,          -- the subject token: accepted, closed, …
    occurred_at timestamptz NOT NULL,          -- decides the period
    data        jsonb       NOT NULL,          -- the contract model as JSON
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX facts_case ON facts (case_id);
CREATE INDEX facts_received ON facts (received_at);

-- Cases whose facts changed since they were last folded. The consumer bumps `version`
-- (an upsert takes the row lock), so a fold that skips locked rows never loses a change.
CREATE TABLE dirty_cases (
    case_id text   PRIMARY KEY,
    version bigint NOT NULL DEFAULT 1
);

-- The fold's output: one row per case, subject, measure and deciding instant. Every number
-- is a sum of these rows over a period, and its drill-down is the rows themselves. Areas
-- are stored at the cell (subject_code) with the cell's community and sub-district, so one
-- row serves every level; departments and people carry the case's area too.
CREATE TABLE items (
    case_id          text             NOT NULL,
    subject_kind     text             NOT NULL,   -- department | area | person
    subject_code     text             NOT NULL,   -- dept code | cell code | user id
    measure          text             NOT NULL,
    at               timestamptz      NOT NULL,
    value            double precision NOT NULL DEFAULT 1,
    community_code   text,
    subdistrict_code text
);
CREATE INDEX items_case ON items (case_id);
CREATE INDEX items_period ON items (subject_kind, at);
CREATE INDEX items_drill ON items (subject_kind, measure, subject_code, at);

-- What was published at a period's end (or re-published on request).
CREATE TABLE publications (
    period_kind  text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    rule_set     text        NOT NULL,
    level        text        NOT NULL DEFAULT '',
    event_id     text        NOT NULL,
    published_at timestamptz NOT NULL,
    body         jsonb       NOT NULL,
    PRIMARY KEY (period_kind, period_start, rule_set, level)
);
