-- A delivery's latest attempt lives in its row: the outcome columns it already had, and now the
-- signature sent. An attempt moves to delivery_attempts only when a later one supersedes it, so a
-- delivery that succeeds at its first attempt (the common case) is one row, not two. Rows written
-- before this migration keep every attempt in delivery_attempts and a null signature.
ALTER TABLE deliveries ADD COLUMN signature text;
