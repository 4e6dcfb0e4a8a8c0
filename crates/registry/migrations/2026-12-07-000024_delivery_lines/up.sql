-- Ordered delivery (webhook `ordering: "subject"`): a webhook's deliveries with the same subject
-- go out one at a time, in the order the lines queue took them.
ALTER TABLE webhooks ADD COLUMN ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'subject'));

-- A line with a delivery out: the delivery and the task that sends it (sent again if the
-- registry stopped before the broker confirmed it). No row: the line is idle.
CREATE TABLE delivery_lines (
    webhook_id uuid NOT NULL,
    line text NOT NULL,
    tenant_id uuid NOT NULL,
    busy_with uuid NOT NULL,
    busy_task bytea NOT NULL,
    busy_since timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, line)
);
CREATE INDEX delivery_lines_tenant ON delivery_lines (tenant_id);

-- The deliveries waiting behind a line's busy one, oldest `seq` first.
CREATE TABLE line_waiting (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id uuid NOT NULL,
    line text NOT NULL,
    tenant_id uuid NOT NULL,
    delivery_id uuid NOT NULL UNIQUE,
    task bytea NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX line_waiting_line ON line_waiting (webhook_id, line, seq);
CREATE INDEX line_waiting_tenant ON line_waiting (tenant_id);
