-- 超期撤回 across an extension: the overdue judged at a deadline that an extension then
-- replaced (that deadline, when it was judged, the 督办 level reached before it), so that a
-- result handling took by that deadline, still on its way when the extension was granted,
-- withdraws it too. NULL: none kept aside.
ALTER TABLE tasks
    ADD COLUMN replaced_deadline timestamptz,
    ADD COLUMN replaced_overdue_at timestamptz,
    ADD COLUMN replaced_overdue_level int;
