-- 超期撤回 (case.overdue_withdrawn): dispatch withdraws a 超期 it judged while the department's
-- on-time result was still on its way. `ever_overdue` must then fall back to false unless the
-- case had another overdue (an earlier rework round, another task), so the case counts its
-- standing overdue declarations: each case.overdue of the handling stage adds one, each
-- withdrawal of one takes one away, and `ever_overdue` is `overdue_count > 0`.
ALTER TABLE cases ADD COLUMN overdue_count integer NOT NULL DEFAULT 0;
-- The cases written before: as many as their timeline holds (at least one when they were
-- ever overdue; none was ever withdrawn).
UPDATE cases c SET overdue_count = greatest(1, (
    SELECT count(*) FROM timeline t
    WHERE t.case_id = c.case_id AND t.type = 'gridloop.case.overdue.v1'
      AND coalesce(t.data ->> 'stage', 'handling') = 'handling'))
WHERE c.ever_overdue;
