-- The audit trail: every command a service took or refused — who, what, when, from where.
-- Append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE for every role that
-- is not the table's owner disabling them on purpose (which is itself visible in the logs).
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,                 -- the runtime clock
    recorded_at timestamptz NOT NULL DEFAULT now(),   -- the database clock
    user_id     text,                                 -- NULL: not authenticated
    roles       text[]      NOT NULL DEFAULT '{}',
    dept        text,
    command     text        NOT NULL,                 -- the command kind, or METHOD /route
    command_id  text,
    case_id     text,
    task_id     text,
    target      jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- the path parameters
    outcome     text        NOT NULL CHECK (outcome IN ('accepted', 'refused', 'replayed')),
    code        text,
    field       text,
    reason      text,
    status      int,
    origin      text        NOT NULL,                 -- http:<client address> | nats:<subject>
    user_agent  text,
    request_id  text,
    trace_id    text
);
CREATE INDEX IF NOT EXISTS audit_log_case ON audit_log (case_id, id) WHERE case_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
