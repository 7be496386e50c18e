-- A task case.reworked brought back whose rework dispatch from dispatch (its new terms) has
-- not come yet: that dispatch neither counts another rework nor starts the round over, even
-- when the department signed and reported the reworked round before it came. Tasks reworked
-- before this column behave as before.
ALTER TABLE tasks ADD COLUMN rework_dispatch_due boolean NOT NULL DEFAULT false;
