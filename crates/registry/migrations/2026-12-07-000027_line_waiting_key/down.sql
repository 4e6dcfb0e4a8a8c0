ALTER TABLE line_waiting DROP CONSTRAINT line_waiting_pkey;
ALTER TABLE line_waiting ADD PRIMARY KEY (seq);
CREATE INDEX line_waiting_line ON line_waiting (webhook_id, line, seq);
