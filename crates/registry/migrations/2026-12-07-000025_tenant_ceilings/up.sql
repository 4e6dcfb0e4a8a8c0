-- A tenant's ceiling on deliveries per second across its webhooks (tiers a platform sells);
-- NULL is none.
ALTER TABLE tenants ADD COLUMN max_deliveries_per_second integer
    CHECK (max_deliveries_per_second > 0);
