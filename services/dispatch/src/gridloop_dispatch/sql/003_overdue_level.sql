-- 超期撤回: the 督办 level a task had reached before its current deadline's overdue, so that an
-- overdue withdrawn (the department's on-time result reached dispatch after the judgement)
-- takes back only the levels reached after it. NULL: no overdue, or one judged by a release
-- that did not record the level.
ALTER TABLE tasks ADD COLUMN overdue_level int;
