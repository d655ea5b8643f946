-- Generations, a lean write path, Amazon's own figure, alerts.
--
-- A generation is one complete computation of orders and buckets from the events topic, with one
-- policy. The API reads the active one; `cancelguard rebuild` fills a new one beside it and switches
-- in one statement once it has caught up.
CREATE TABLE generations (
    generation   integer     PRIMARY KEY,
    state        text        NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    policy       jsonb,                  -- the policy overrides its numbers follow (NULL: not set yet)
    started_at   timestamptz NOT NULL DEFAULT now(),
    switched_at  timestamptz,
    from_time    timestamptz             -- a rebuild from a time: events before it were not re-read
);
CREATE UNIQUE INDEX generations_one_active ON generations ((true)) WHERE state = 'active';
INSERT INTO generations (generation, state) VALUES (1, 'active');

-- Orders: the compact state (metrics/state_codec.py, version 2) replaces the JSON document, which
-- stays readable for rows the previous release wrote; columns nothing read are gone.
ALTER TABLE orders
    ADD COLUMN generation integer NOT NULL DEFAULT 1,
    ADD COLUMN fact bytea,
    ADD COLUMN skus text[],
    ADD COLUMN seller_cancelled_skus text[];
ALTER TABLE orders ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE orders ALTER COLUMN state DROP NOT NULL;
-- suppression risk is read in SQL now: the previous release's rows get their SKUs from their JSON
UPDATE orders SET
    skus = ARRAY(
        SELECT DISTINCT i -> 'sku' ->> 0 FROM jsonb_array_elements(state -> 'it') AS i
        WHERE COALESCE(i -> 'sku' ->> 0, '') <> '' ORDER BY 1),
    seller_cancelled_skus = CASE WHEN verdict = 'COUNTED' THEN ARRAY(
        SELECT DISTINCT i -> 'sku' ->> 0 FROM jsonb_array_elements(state -> 'it') AS i
        WHERE COALESCE(i -> 'sku' ->> 0, '') <> ''
          AND (status = 'Canceled' OR (jsonb_typeof(i -> 'cx') = 'array' AND i -> 'cx' ->> 0 <> 'BUYER'))
        ORDER BY 1) END
WHERE state IS NOT NULL AND state <> 'null'::jsonb;
ALTER TABLE orders
    DROP COLUMN status,
    DROP COLUMN fulfillment_channel,
    DROP COLUMN verdict,
    DROP COLUMN rule,
    DROP COLUMN needs_review,
    DROP COLUMN updated_at;
ALTER TABLE orders DROP CONSTRAINT orders_pkey;
ALTER TABLE orders ADD PRIMARY KEY (generation, seller_account, marketplace_id, amazon_order_id);
-- room on each page, so that an update that changes no indexed column stays on its page (HOT) and
-- writes no index: most updates of an order touch only `fact`
ALTER TABLE orders SET (fillfactor = 80);
DROP INDEX orders_open_requests;
DROP INDEX orders_counted;
DROP INDEX orders_purchased;
CREATE INDEX orders_open_requests
    ON orders (generation, seller_account, marketplace_id, request_at, amazon_order_id)
    WHERE open_request IS NOT NULL;
CREATE INDEX orders_counted
    ON orders (generation, seller_account, marketplace_id, numerator_bucket)
    WHERE numerator_bucket IS NOT NULL;
-- suppression risk (the orders of 30 days that have SKUs) and retention (old orders)
CREATE INDEX orders_purchased ON orders (generation, seller_account, marketplace_id, purchased_at);

ALTER TABLE cr_buckets ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE cr_buckets ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE cr_buckets DROP CONSTRAINT cr_buckets_pkey;
ALTER TABLE cr_buckets ADD PRIMARY KEY (generation, seller_account, marketplace_id, bucket_start);
ALTER TABLE cr_buckets SET (fillfactor = 80);

-- offsets are per generation: a rebuild reads the topic again under its own
ALTER TABLE consumer_offsets ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE consumer_offsets ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE consumer_offsets DROP CONSTRAINT consumer_offsets_pkey;
ALTER TABLE consumer_offsets ADD PRIMARY KEY (generation, consumer_group, topic, partition);

-- Amazon's own figure (GET_V2_SELLER_PERFORMANCE_REPORT), per seller account x marketplace x window;
-- ours is summed from the buckets of the same window when read. Not per generation: it is Amazon's.
CREATE TABLE amazon_rates (
    seller_account      text        NOT NULL,
    marketplace_id      text        NOT NULL,
    window_start        timestamptz NOT NULL,  -- reportingDateFrom
    window_end          timestamptz NOT NULL,  -- exclusive: reportingDateTo (23:59) plus a minute
    orders              bigint      NOT NULL,
    cancellations       bigint      NOT NULL,
    rate                numeric     NOT NULL,
    status              text        NOT NULL,
    reported_at         timestamptz NOT NULL,  -- when Amazon produced the report: the latest wins
    event_id            text        NOT NULL,
    PRIMARY KEY (seller_account, marketplace_id, window_start, window_end)
);

-- Alerts. `alert_levels`: per seller account x marketplace x window, the status last alerted, a
-- sequence number (part of each alert's id), and a status seen but not alerted yet (the grace period).
CREATE TABLE alert_levels (
    seller_account  text        NOT NULL,
    marketplace_id  text        NOT NULL,
    window_name     text        NOT NULL,  -- LIVE, AMAZON_7, AMAZON_30, AMAZON_DIFFERENCE
    status          text        NOT NULL,
    seq             integer     NOT NULL DEFAULT 0,
    pending_status  text,
    pending_since   timestamptz,
    PRIMARY KEY (seller_account, marketplace_id, window_name)
);
CREATE INDEX alert_levels_pending ON alert_levels (pending_since) WHERE pending_status IS NOT NULL;

-- SKUs alerted at suppression risk, by the pair of orders that put them there: one alert per pair
CREATE TABLE suppression_alerts (
    seller_account  text NOT NULL,
    marketplace_id  text NOT NULL,
    seller_sku      text NOT NULL,
    first_order     text NOT NULL,
    second_order    text NOT NULL,
    PRIMARY KEY (seller_account, marketplace_id, seller_sku, first_order, second_order)
);

-- The transactional outbox: alerts are written here in the batch's transaction, published after the
-- commit, and marked sent. `attempts` > 0 on an unsent alert means it may be on the topic already.
CREATE TABLE alert_outbox (
    id             bigserial   PRIMARY KEY,
    alert_id       text        NOT NULL UNIQUE,  -- deterministic: a re-publish is a duplicate to drop
    partition_key  text        NOT NULL,
    payload        bytea       NOT NULL,         -- cancelguard.events.v1.Alert
    created_at     timestamptz NOT NULL DEFAULT now(),
    attempts       integer     NOT NULL DEFAULT 0,
    sent_at        timestamptz
);
CREATE INDEX alert_outbox_unsent ON alert_outbox (id) WHERE sent_at IS NULL;
