-- Open311's public list (GET requests) shows a case when an operator marked it public, else
-- when it came in through a public channel (the web: Open311 and the portals); every other
-- case stays internal. NULL: no operator has decided, the channel does.
ALTER TABLE cases ADD COLUMN public boolean;
