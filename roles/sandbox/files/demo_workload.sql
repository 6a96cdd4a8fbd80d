-- A small workload for the demo shop, run once after the demo schema so that
-- pg_stat_statements has something to show (playbooks/query_tuning.yml). The statements
-- run through EXECUTE with parameters, so pg_stat_statements records them with $1
-- placeholders, as it records an application's statements. Two of them scan tables for
-- want of an index: shop.orders.customer_id and shop.order_items.product_id are foreign
-- keys without one.
-- The workload runs as an application role, not as the superuser that loads it: the query
-- tuning workflow plans a statement as the role that ran it and leaves out statements a
-- superuser ran (docs/query_performance.md), as it should on a production server.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

DO $role$
BEGIN
    CREATE ROLE shop_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$role$;
GRANT USAGE ON SCHEMA shop TO shop_app;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO shop_app;
SET ROLE shop_app;

DO $workload$
DECLARE
    i integer;
    n bigint;
BEGIN
    FOR i IN 1..200 LOOP
        EXECUTE 'SELECT count(*) FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id '
                'WHERE c.id = $1'
            INTO n USING (i % 200) + 1;
        EXECUTE 'SELECT count(*) FROM shop.order_items WHERE product_id = $1'
            INTO n USING (i % 100) + 1;
        EXECUTE 'SELECT count(*) FROM (SELECT id FROM shop.orders WHERE status = $1 '
                'ORDER BY created_at DESC LIMIT 10) recent'
            INTO n USING 'new';
        EXECUTE 'SELECT count(*) FROM shop.customers WHERE id = $1'
            INTO n USING (i % 200) + 1;
    END LOOP;
END
$workload$;

RESET ROLE;
