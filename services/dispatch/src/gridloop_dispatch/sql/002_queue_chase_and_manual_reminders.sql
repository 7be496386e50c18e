-- 待人工派遣 is chased: the level of the queue's chase ladder a waiting case has reached
-- (dispatcher, then shift leader; calendar.yaml `queue_chase`), so each level fires once.
ALTER TABLE cases ADD COLUMN queue_chase_level int NOT NULL DEFAULT 0;
-- 人工催办: how often a dispatcher or shift leader chased the task by hand.
ALTER TABLE tasks ADD COLUMN manual_reminders int NOT NULL DEFAULT 0;
