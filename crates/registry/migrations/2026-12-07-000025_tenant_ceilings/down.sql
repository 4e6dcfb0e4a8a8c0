ALTER TABLE tenants DROP COLUMN max_deliveries_per_second;
