DROP TABLE deleted_tenants;
