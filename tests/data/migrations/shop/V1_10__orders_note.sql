ALTER TABLE orders ADD COLUMN note text;
COMMENT ON TABLE orders IS 'Orders of ${shop_name} (${flyway:filename})';
