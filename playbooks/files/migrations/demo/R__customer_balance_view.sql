-- Repeatable: re-applied whenever this file changes.
CREATE OR REPLACE VIEW ${billing_schema}.customer_balance AS
SELECT customer_id, sum(total) FILTER (WHERE status = 'open') AS open_total, count(*) AS invoices
FROM ${billing_schema}.invoices
GROUP BY customer_id;
