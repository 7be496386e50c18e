-- Whether a parked command's answer goes on dispatch.<dept>.answer too (its `answerfeed`
-- extension: `all`, the default, true; `none`, false). Commands parked before this column
-- were answered on both, and still are.
ALTER TABLE parked_commands ADD COLUMN answer_feed boolean NOT NULL DEFAULT true;
