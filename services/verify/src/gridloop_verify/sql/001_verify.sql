-- The verify service's own tables (runtime tables come from gridloop_runtime).

-- Verify's projection of each case it has heard of, and its own counters.
CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    stage            text        NOT NULL DEFAULT 'waiting'
                     CHECK (stage IN ('waiting', 'verifying', 'awaiting_approval', 'reworking', 'closed')),
    category_code    text,
    cell_code        text,
    community_code   text,
    subdistrict_code text,
    urgency          text,
    description      text,
    address          text,
    location         jsonb,
    dept             text,
    dept_task_id     text,
    deadline         timestamptz,
    result           text,
    evidence         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    failures         int         NOT NULL DEFAULT 0,
    reworks          int         NOT NULL DEFAULT 0,
    reopenings       int         NOT NULL DEFAULT 0,
    task_seq         int         NOT NULL DEFAULT 0,
    passed_by        text,
    closed_at        timestamptz,
    closed_by        text,
    approved_by      text,
    updated_at       timestamptz NOT NULL
);
-- The shift leader's approval queue.
CREATE INDEX cases_awaiting_approval ON cases (updated_at) WHERE stage = 'awaiting_approval';

-- 核查任务 (verification of a result) and 核实任务 (confirmation before acceptance).
CREATE TABLE tasks (
    task_id        text PRIMARY KEY,
    case_id        text        NOT NULL REFERENCES cases (case_id),
    purpose        text        NOT NULL CHECK (purpose IN ('verification', 'confirmation')),
    status         text        NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'passed', 'failed', 'confirmed', 'refuted', 'cancelled')),
    supervisor_id  text,
    primary_id     text,
    backup_id      text,
    backup_used    boolean     NOT NULL DEFAULT false,
    assigned_at    timestamptz NOT NULL,
    due            timestamptz NOT NULL,
    reason         text,
    reminded_at    timestamptz,
    overdue_at     timestamptz,
    submitted_by   text,
    submitted_at   timestamptz,
    on_time        boolean,
    notes          text,
    photos         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    position       jsonb,
    cancel_reason  text
);
-- "My tasks" and the absence hand-over read open tasks by supervisor; events read by case.
CREATE INDEX tasks_open_by_supervisor ON tasks (supervisor_id, due) WHERE status = 'open';
CREATE INDEX tasks_by_case ON tasks (case_id);

-- Absences (请假、外出): while one lasts, the cell's backup supervisor (AB 角) takes the tasks.
CREATE TABLE absences (
    id         bigserial   PRIMARY KEY,
    user_id    text        NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text,
    set_by     text        NOT NULL,
    created_at timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX absences_by_user ON absences (user_id, ends_at);
