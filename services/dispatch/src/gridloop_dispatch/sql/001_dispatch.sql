-- The dispatch service's own tables (runtime tables — outbox, inbox, timers, commands — come
-- from gridloop_runtime and live in this schema too).

-- Dispatch's projection of each accepted case, and the command centre's marks on it.
CREATE TABLE cases (
    case_id                text PRIMARY KEY,
    state                  text        NOT NULL
                           CHECK (state IN ('queued', 'dispatched', 'handled', 'closed')),
    category_code          text        NOT NULL,
    cell_code              text        NOT NULL,
    community_code         text,
    subdistrict_code       text,
    urgency                text        NOT NULL,
    description            text        NOT NULL,
    address                text,
    location               jsonb,
    part_code              text,
    part_owner_dept        text,
    reporter               jsonb,          -- masked (intake masks; dispatch masks again)
    attachments            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    channel                text,
    source                 text,
    accepted_at            timestamptz NOT NULL,
    returned_by            text[]      NOT NULL DEFAULT '{}',
    queue_reason           text,
    queued_at              timestamptz,
    supervised_at          timestamptz,
    supervised_reason      text,
    supervised_by          text,
    emergency_escalated_at timestamptz,
    task_seq               int         NOT NULL DEFAULT 0,
    closed_at              timestamptz,
    updated_at             timestamptz NOT NULL
);
-- The manual dispatch queue (待人工派遣), oldest first.
CREATE INDEX cases_queue ON cases (queued_at) WHERE queued_at IS NOT NULL;
-- 挂牌督办 board.
CREATE INDEX cases_supervised ON cases (supervised_at)
    WHERE supervised_at IS NOT NULL AND state <> 'closed';

-- One department's assignment on a case: who held it, from when to when (for ever).
CREATE TABLE tasks (
    task_id            text PRIMARY KEY,
    case_id            text        NOT NULL REFERENCES cases (case_id),
    dept               text        NOT NULL,
    co_handlers        text[]      NOT NULL DEFAULT '{}',
    lead               text,
    kind               text        NOT NULL
                       CHECK (kind IN ('initial', 'redispatch', 'rework', 'split', 'manual')),
    status             text        NOT NULL
                       CHECK (status IN ('open', 'signed', 'handled', 'returned', 'recalled', 'closed')),
    dispatched_at      timestamptz NOT NULL,
    dispatched_by      text        NOT NULL,
    deadline           timestamptz NOT NULL,
    window_start       timestamptz NOT NULL,
    sign_in_due        timestamptz,
    gen                int         NOT NULL DEFAULT 1,
    signed_at          timestamptz,
    handled_at         timestamptz,
    reminded_at        timestamptz,
    overdue_at         timestamptz,
    sign_in_overdue_at timestamptz,
    escalation_level   int         NOT NULL DEFAULT 0,
    escalated_at       timestamptz,
    reworks            int         NOT NULL DEFAULT 0,
    extensions         int         NOT NULL DEFAULT 0,
    note               text,
    reason             text,
    ended_at           timestamptz,
    end_reason         text
);
CREATE INDEX tasks_by_case ON tasks (case_id);
-- The overdue / escalated board reads active tasks only.
CREATE INDEX tasks_active_late ON tasks (deadline)
    WHERE status IN ('open', 'signed') AND (overdue_at IS NOT NULL OR escalation_level > 0);
CREATE INDEX tasks_active_by_dept ON tasks (dept, deadline) WHERE status IN ('open', 'signed');

-- 延期申请 and the dispatcher's decision.
CREATE TABLE extensions (
    request_id        text PRIMARY KEY,
    case_id           text        NOT NULL REFERENCES cases (case_id),
    task_id           text        NOT NULL REFERENCES tasks (task_id),
    dept              text        NOT NULL,
    reason            text        NOT NULL,
    proposed_deadline timestamptz NOT NULL,
    current_deadline  timestamptz NOT NULL,
    requested_at      timestamptz NOT NULL,
    requested_by      text,
    status            text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'granted', 'refused', 'moot')),
    decided_at        timestamptz,
    decided_by        text,
    new_deadline      timestamptz,
    decision_reason   text
);
CREATE INDEX extensions_pending ON extensions (requested_at) WHERE status = 'pending';
CREATE INDEX extensions_by_task ON extensions (task_id);
