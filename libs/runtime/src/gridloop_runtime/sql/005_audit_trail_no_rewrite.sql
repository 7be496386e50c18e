-- The audit trail stays append-only for the service's own role too. That role runs the
-- migrations and so owns audit_log, and an owner may disable the triggers of 003; without
-- the privileges its UPDATE, DELETE and TRUNCATE fail all the same, whatever statement the
-- service is made to run. (An owner keeps the right to grant them back or drop the table:
-- deliberate DDL, visible in the database's statement log — docs/operations.md.)
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;
