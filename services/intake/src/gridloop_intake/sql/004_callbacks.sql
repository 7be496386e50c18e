-- 回访: the operators' call-back of a closed case's reporter who has not rated, one per
-- closing: each try, and how it ended (reached, or not reached after the allowed tries).
CREATE TABLE callbacks (
    case_id   text        NOT NULL,
    closed_at timestamptz NOT NULL,
    tries     integer     NOT NULL DEFAULT 0,
    outcome   text        CHECK (outcome IN ('reached', 'not_reached')),  -- null: still open
    attempts  jsonb       NOT NULL DEFAULT '[]',  -- [{at, by, reached, note}, …]
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, closed_at)
);
-- The worklist: closed cases of the channels called back, oldest closing first.
CREATE INDEX cases_closed_for_callback ON cases (closed_at)
    WHERE status = 'closed' AND channel IN ('hotline', 'web');
