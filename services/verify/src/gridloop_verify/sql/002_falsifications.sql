-- 弄虚作假: a verdict may find the department's result falsified (a supervisor on site, or the
-- shift leader refusing to close on the evidence). The task keeps whether its verdict said
-- so; the case counts how often it happened.
ALTER TABLE tasks ADD COLUMN falsified boolean NOT NULL DEFAULT false;
ALTER TABLE cases ADD COLUMN falsifications int NOT NULL DEFAULT 0;
