-- When an order's row last changed, for retention: an order Amazon never dated (known only from a
-- buyer's message, or a seller's decision) has no purchase time to expire by, and goes once it has not
-- changed for the retention period. Existing rows take the time of this migration (a constant default:
-- no table rewrite).
ALTER TABLE orders ADD COLUMN changed_at timestamptz NOT NULL DEFAULT now();
