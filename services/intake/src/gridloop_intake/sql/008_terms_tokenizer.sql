-- 类案参考: which segmenter gave an archived case its search terms (INTAKE_SIMILAR_TOKENIZER:
-- `jieba` or `bigram`). Terms of one segmenter do not match a query cut by the other, so when
-- the setting changes intake's indexer segments those cases again, the newest first found by
-- this index. The terms written before this migration were jieba's (the default until then).
ALTER TABLE archive ADD COLUMN terms_by text;
UPDATE archive SET terms_by = 'jieba' WHERE terms IS NOT NULL;
CREATE INDEX archive_terms_by ON archive (terms_by, closed_at) WHERE terms IS NOT NULL;
