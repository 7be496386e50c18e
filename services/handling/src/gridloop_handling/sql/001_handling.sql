-- The handling service's own tables (runtime tables come from gridloop_runtime).

-- 案卷摘要: what a department needs to see of a case, from case.accepted and case.dispatched.
CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    category_code    text,
    cell_code        text,
    community_code   text,
    subdistrict_code text,
    urgency          text,
    description      text,
    address          text,
    location         jsonb,
    part_code        text,
    attachments      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    reporter         jsonb,
    reported_at      timestamptz,
    accepted_at      timestamptz,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL
);

-- 处置任务: one department's task on a case (the lead's, the sole unit's or a co-handler's).
CREATE TABLE tasks (
    task_id            text PRIMARY KEY,
    case_id            text        NOT NULL,
    dept               text        NOT NULL,
    role               text        NOT NULL CHECK (role IN ('sole', 'lead', 'co-handler')),
    group_id           text        NOT NULL,
    lead               text        NOT NULL,
    co_handlers        text[]      NOT NULL DEFAULT '{}',
    kind               text        NOT NULL,
    state              text        NOT NULL
                       CHECK (state IN ('dispatched', 'signed', 'handled', 'returned', 'recalled',
                                        'closed', 'superseded')),
    deadline           timestamptz NOT NULL,
    dispatched_at      timestamptz NOT NULL,
    sign_in_due        timestamptz,
    urgency            text        NOT NULL DEFAULT 'normal',
    round              int         NOT NULL DEFAULT 1,
    reworks            int         NOT NULL DEFAULT 0,
    signed_at          timestamptz,
    signed_by          text,
    sign_on_time       boolean,
    progress_notes     int         NOT NULL DEFAULT 0,
    handled_at         timestamptz,
    handled_by         text,
    completed_at       timestamptz,
    result             text,
    evidence           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    on_time            boolean,
    extension          jsonb,
    extensions_granted int         NOT NULL DEFAULT 0,
    escalation_level   int         NOT NULL DEFAULT 0,
    supervised         boolean     NOT NULL DEFAULT false,
    ended_at           timestamptz,
    end_reason         text,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX tasks_case ON tasks (case_id);
-- The inbox: a department's open tasks, soonest deadline first.
CREATE INDEX tasks_open ON tasks (dept, deadline) WHERE state IN ('dispatched', 'signed', 'handled');
-- The history: a department's ended tasks, latest first.
CREATE INDEX tasks_ended ON tasks (dept, ended_at DESC) WHERE state NOT IN ('dispatched', 'signed', 'handled');

-- 处置记录: every step of every task, who and when — "who held this case, from when to when".
CREATE TABLE task_log (
    id       bigserial PRIMARY KEY,
    task_id  text        NOT NULL,
    case_id  text        NOT NULL,
    dept     text        NOT NULL,
    round    int         NOT NULL,
    at       timestamptz NOT NULL,
    action   text        NOT NULL,
    by       text,
    note     text,
    evidence jsonb       NOT NULL DEFAULT '[]'::jsonb,
    data     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX task_log_task ON task_log (task_id, id);
CREATE INDEX task_log_contributions ON task_log (task_id, round) WHERE action = 'contribution';

-- Commands that came over NATS for a case not dispatched to their department here yet: the
-- dispatch event and the department's command travel on different streams, so the command
-- may overtake it. Held until the dispatch arrives or the wait is over (a timer), then
-- answered either way.
CREATE TABLE parked_commands (
    id          bigserial PRIMARY KEY,
    case_id     text        NOT NULL,
    dept        text        NOT NULL,
    action      text        NOT NULL,
    command     jsonb       NOT NULL,
    reply_to    text,
    parked_at   timestamptz NOT NULL
);
CREATE INDEX parked_commands_case ON parked_commands (case_id, id);

-- Answers to NATS commands that asked for a direct reply (CloudEvents extension `replyto`):
-- written with the command's effect, published (core NATS) after commit, then deleted.
CREATE TABLE replies (
    id          bigserial PRIMARY KEY,
    subject     text        NOT NULL,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
