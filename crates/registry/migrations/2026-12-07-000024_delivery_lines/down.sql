DROP TABLE line_waiting;
DROP TABLE delivery_lines;
ALTER TABLE webhooks DROP COLUMN ordering;
