CREATE TABLE seen (event_id text PRIMARY KEY, n int NOT NULL);
CREATE TABLE counter (value int NOT NULL);
INSERT INTO counter VALUES (0);
CREATE TABLE traces (event_id text PRIMARY KEY, trace_id text);
