-- Mail to reporters: who on a case gets mail (reporters who left an e-mail, by their ref in
-- `reporters`, with the language they wrote in), the department's last reported result for
-- the "closed" mail, and the language a reporter wants.
ALTER TABLE cases ADD COLUMN subscribers jsonb NOT NULL DEFAULT '[]';  -- [[ref, lang], …]
ALTER TABLE cases ADD COLUMN result text;                              -- 处置结果, from case.handled
ALTER TABLE reporters ADD COLUMN lang text;
