-- Evidence uploaded to gridloop's store (POST /attachments) travels by reference: the case
-- keeps the references of its report's files and of those added later, and the case file
-- finds any attachment named in a timeline line (the after photos of handling and verify
-- too), so whoever may read the case reads its photos here. The index holds only the lines
-- that carry files.
ALTER TABLE cases ADD COLUMN files jsonb NOT NULL DEFAULT '[]';
CREATE INDEX timeline_files ON timeline USING gin ((data -> 'files') jsonb_path_ops)
    WHERE data ? 'files';
