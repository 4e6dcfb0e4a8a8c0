-- Deliveries sent again by request while their chain of retries was under way, kept for 25 hours
-- (`retry::RESENDS_KEPT`): the routing snapshot lists them, so a dispatcher that starts after
-- the `delivery_resent.v1` notice (a new replica, every replica after a rollout) still drops the
-- replaced chain's tasks.
CREATE TABLE delivery_resends (
    delivery_id uuid PRIMARY KEY,
    resent_at timestamptz NOT NULL
);

CREATE INDEX delivery_resends_resent_idx ON delivery_resends (resent_at);
