-- A parked command's timer now says which case and command it waits for (payload case_id,
-- dept, command_id): the timer rules load the case's state by it. Timers set before this
-- (payload {"id": <parked id>}) are given the same.
UPDATE timers t
SET payload = t.payload || jsonb_build_object(
    'case_id', p.case_id, 'dept', p.dept, 'command_id', p.command->>'command_id')
FROM parked_commands p
WHERE t.kind = 'handling-parked' AND t.key = 'parked:' || p.id || '#';
