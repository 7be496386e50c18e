-- 超期撤回 across an extension: the deadline an extension replaced after it was judged
-- overdue (an overdue is judged at the deadline itself), and the 督办 level reached before
-- it, so that a result handling took by that deadline, still on its way when the extension
-- was granted, withdraws it too. NULL: none kept aside.
ALTER TABLE tasks
    ADD COLUMN replaced_deadline timestamptz,
    ADD COLUMN replaced_overdue_level int;
