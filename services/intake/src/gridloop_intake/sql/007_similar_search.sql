-- 类案参考: the search terms of each archived (closed) case's description, for "similar past
-- cases" by PostgreSQL full-text search. The terms are the description's words as jieba
-- segments them (or its character bigrams, INTAKE_SIMILAR_TOKENIZER), stored as a tsvector
-- of those words as they are (array_to_tsvector: no parser, no stemming, no locale, so the
-- C-locale cluster treats Chinese like any other text). NULL: not segmented yet — intake's
-- indexer fills these in the background, the cases closed before this migration included.
ALTER TABLE archive ADD COLUMN terms tsvector;
CREATE INDEX archive_terms ON archive USING gin (terms);
CREATE INDEX archive_unindexed ON archive (closed_at) WHERE terms IS NULL;
