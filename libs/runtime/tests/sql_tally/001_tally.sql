CREATE TABLE tallies (case_id text PRIMARY KEY, total int NOT NULL, seen int[] NOT NULL);
