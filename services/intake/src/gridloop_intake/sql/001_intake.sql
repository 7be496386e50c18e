-- The intake service's tables: reports as received (and who sent them), the cases and their
-- timeline (the case file, 案卷档案), the archive of closed cases (结单归档), and rejected
-- messages kept for operators. Runtime tables (outbox, inbox, timers, commands) come from
-- gridloop_runtime.

-- Per-day case numbers: <district>-<YYYYMMDD>-<NNNNNN>.
CREATE TABLE case_numbers (
    day  date PRIMARY KEY,
    last integer NOT NULL
);

CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    status           text        NOT NULL,
    status_notes     text,
    channel          text        NOT NULL,
    source           text        NOT NULL,
    external_id      text,
    report_id        text        NOT NULL,
    category_code    text,
    urgency          text        NOT NULL DEFAULT 'normal',
    description      text        NOT NULL,
    cell_code        text        NOT NULL,
    community_code   text        NOT NULL,
    subdistrict_code text        NOT NULL,
    lon              double precision NOT NULL,
    lat              double precision NOT NULL,
    located_by       text        NOT NULL,
    address          text,
    part_code        text,
    part_owner_dept  text,
    camera_id        text,
    confidence       double precision,
    reporter         jsonb,                 -- masked: {ref, name, phone}
    reporter_user_id text,
    attachments      jsonb       NOT NULL DEFAULT '[]',
    reported_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    queue_reason     text,                  -- why it waits for an operator (待立案)
    proposal         jsonb,                 -- an operator's decision awaiting the shift leader
    accepted_at      timestamptz,
    dept             text,
    task_id          text,
    deadline         timestamptz,
    overdue          boolean     NOT NULL DEFAULT false,
    ever_overdue     boolean     NOT NULL DEFAULT false,
    reworks          integer     NOT NULL DEFAULT 0,
    closed_at        timestamptz,
    on_time          boolean,
    archived         boolean     NOT NULL DEFAULT false,
    rating           text,
    reports          integer     NOT NULL DEFAULT 1,   -- reports merged into it, the first included
    detections       integer     NOT NULL DEFAULT 0,   -- video detections folded into it
    targets          jsonb       NOT NULL DEFAULT '[]' -- [[source, external_id], …] told of every change
);
-- Duplicate search: open cases of a category near a point.
CREATE INDEX cases_open_near ON cases (category_code, lat, lon)
    WHERE status NOT IN ('closed', 'rejected', 'merged');
CREATE INDEX cases_status ON cases (status, received_at);
CREATE INDEX cases_reported ON cases (reported_at);
CREATE INDEX cases_cell ON cases (cell_code);
CREATE INDEX cases_dept ON cases (dept) WHERE dept IS NOT NULL;
CREATE INDEX cases_overdue ON cases (deadline) WHERE overdue;

-- Every report and detection received, whatever became of it: nothing is lost.
CREATE TABLE reports (
    report_id   text PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,  -- order of arrival
    source      text        NOT NULL,
    external_id text,
    channel     text        NOT NULL,
    case_id     text        NOT NULL,
    outcome     text        NOT NULL,   -- new | merged | folded
    reported_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    camera_id   text,
    confidence  double precision,
    data        jsonb       NOT NULL    -- the report as sent, without the reporter's identity
);
CREATE UNIQUE INDEX reports_idempotency ON reports (source, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX reports_case ON reports (case_id);

-- The reporter's identity stays here; events carry the masked form and the ref.
CREATE TABLE reporters (
    ref        text PRIMARY KEY,
    report_id  text        NOT NULL,
    name       text,
    phone      text,
    email      text,
    created_at timestamptz NOT NULL
);

-- The case a camera's view of a category folds into while the scene keeps being seen.
CREATE TABLE camera_scenes (
    camera_id        text        NOT NULL,
    category_code    text        NOT NULL,
    case_id          text        NOT NULL,
    last_detected_at timestamptz NOT NULL,
    PRIMARY KEY (camera_id, category_code)
);

-- The case file: every lifecycle event of every case, and intake's own steps.
CREATE TABLE timeline (
    seq         bigserial PRIMARY KEY,
    case_id     text        NOT NULL,
    event_id    text,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor       jsonb,
    status      text,                  -- the case's status after this entry; null: unchanged
    summary     text        NOT NULL,
    data        jsonb       NOT NULL
);
CREATE INDEX timeline_case ON timeline (case_id, seq);
CREATE UNIQUE INDEX timeline_event ON timeline (event_id) WHERE event_id IS NOT NULL;

-- 结单归档: a closed case with its timeline as it stood at closing.
CREATE TABLE archive (
    case_id          text PRIMARY KEY,
    closed_at        timestamptz NOT NULL,
    category_code    text,
    cell_code        text        NOT NULL,
    community_code   text        NOT NULL,
    subdistrict_code text        NOT NULL,
    lon              double precision NOT NULL,
    lat              double precision NOT NULL,
    dept             text,
    on_time          boolean,
    case_data        jsonb       NOT NULL,
    timeline         jsonb       NOT NULL
);
CREATE INDEX archive_similar ON archive (category_code, lat, lon);

-- One satisfaction rating per closing of a case.
CREATE TABLE ratings (
    case_id   text        NOT NULL,
    closed_at timestamptz NOT NULL,
    rating    text        NOT NULL,
    comment   text,
    via       text        NOT NULL,
    rated_at  timestamptz NOT NULL,
    PRIMARY KEY (case_id, closed_at)
);

-- Messages intake could not take, answered on notify.<source> and kept for operators.
CREATE TABLE rejections (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    subject     text        NOT NULL,
    source      text        NOT NULL,
    channel     text,
    message_id  text,
    external_id text,
    type        text,
    errors      jsonb       NOT NULL,
    headers     jsonb,
    body        bytea
);
CREATE INDEX rejections_source ON rejections (source, received_at);
