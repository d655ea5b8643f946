-- The API's own records (issue 9), and the notifications that keep its read cache fresh.
-- Nothing here changes what the metrics service writes: the triggers only observe its commits, and
-- only those of the active generation (a rebuild's rows are nobody's news until its switch, which
-- says so itself: 'g').

-- Writes, once per request_id (AIP-155): a retry gets the stored response, and the order event is
-- published again until it is known to be on the topic (published_at).
CREATE TABLE api_requests (
    caller          text        NOT NULL,  -- the calling service: request ids are its namespace
    request_id      text        NOT NULL,
    method          text        NOT NULL,
    fingerprint     bytea       NOT NULL,  -- SHA-256 of the request without its request_id (and text)
    response        bytea       NOT NULL,  -- the serialized response, returned again to a retry
    event           bytea,                 -- the cancelguard.events.v1.OrderEvent to publish, if any
    partition_key   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX api_requests_unpublished ON api_requests (created_at)
    WHERE published_at IS NULL AND event IS NOT NULL;
CREATE INDEX api_requests_created ON api_requests (created_at);

-- The helpdesk answered the buyer's request (MarkRequestAnswered).
CREATE TABLE request_answers (
    seller_account  text        NOT NULL,
    marketplace_id  text        NOT NULL,
    amazon_order_id text        NOT NULL,
    answered_at     timestamptz NOT NULL,
    answered_by     text        NOT NULL,
    PRIMARY KEY (seller_account, marketplace_id, amazon_order_id)
);

-- Every change of an order's cancellation request in the active generation, in the order
-- WatchCancellationRequests streams them. A reader takes only rows of transactions older than every transaction still running
-- (tx < pg_snapshot_xmin(pg_current_snapshot())), in (tx, seq) order: no row can later appear before
-- a position already read, so a watcher resuming from (tx, seq) sees every change exactly once.
CREATE TABLE request_changes (
    tx              xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq             bigserial   NOT NULL,
    seller_account  text        NOT NULL,
    marketplace_id  text        NOT NULL,
    amazon_order_id text        NOT NULL,
    kind            text        NOT NULL,  -- OPENED, CHANGED, CLOSED, ANSWERED
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx, seq)
);
CREATE INDEX request_changes_seller ON request_changes (seller_account, tx, seq);
CREATE INDEX request_changes_changed ON request_changes (changed_at);

CREATE FUNCTION log_request_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.generation IS DISTINCT FROM (SELECT generation FROM generations WHERE state = 'active') THEN
        RETURN NULL;
    END IF;
    INSERT INTO request_changes (seller_account, marketplace_id, amazon_order_id, kind)
    VALUES (NEW.seller_account, NEW.marketplace_id, NEW.amazon_order_id,
            CASE WHEN NEW.open_request IS NULL THEN 'CLOSED'
                 WHEN TG_OP = 'INSERT' OR OLD.open_request IS NULL THEN 'OPENED'
                 ELSE 'CHANGED' END);
    RETURN NULL;
END $$;

CREATE TRIGGER orders_request_opened AFTER INSERT ON orders
    FOR EACH ROW WHEN (NEW.open_request IS NOT NULL) EXECUTE FUNCTION log_request_change();
CREATE TRIGGER orders_request_changed AFTER UPDATE OF open_request, request_at ON orders
    FOR EACH ROW WHEN (OLD.open_request IS DISTINCT FROM NEW.open_request
                       OR OLD.request_at IS DISTINCT FROM NEW.request_at)
    EXECUTE FUNCTION log_request_change();

-- Read-cache invalidation, delivered at commit on channel cancelguard_reads, one notification per
-- statement: "r <seller>|<marketplace> ..." (CR buckets or Amazon's figures changed), "o
-- <seller>|<marketplace>|<order> ..." (orders changed), "O <seller>|<marketplace> ..." (many orders of
-- these accounts changed), "c <seller> ..." (request changes logged), "g" (another generation is
-- active: everything changed).
CREATE FUNCTION active_generation() RETURNS integer LANGUAGE sql STABLE
SET search_path FROM CURRENT AS $$
    SELECT generation FROM generations WHERE state = 'active'
$$;

CREATE FUNCTION notify_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text;
BEGIN
    SELECT string_agg(DISTINCT seller_account || '|' || marketplace_id, ' ') INTO keys FROM changed
        WHERE generation = active_generation();
    IF keys IS NOT NULL THEN
        PERFORM pg_notify('cancelguard_reads', 'r ' || left(keys, 7000));
        IF length(keys) > 7000 THEN
            PERFORM pg_notify('cancelguard_reads', '*');
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cr_buckets_notify_insert AFTER INSERT ON cr_buckets
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_buckets();
CREATE TRIGGER cr_buckets_notify_update AFTER UPDATE ON cr_buckets
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_buckets();
CREATE TRIGGER cr_buckets_notify_delete AFTER DELETE ON cr_buckets
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_buckets();

-- Amazon's figures are not per generation
CREATE FUNCTION notify_amazon_rates() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text;
BEGIN
    SELECT string_agg(DISTINCT seller_account || '|' || marketplace_id, ' ') INTO keys FROM changed;
    IF keys IS NOT NULL THEN
        PERFORM pg_notify('cancelguard_reads', CASE WHEN length(keys) > 7000 THEN '*' ELSE 'r ' || keys END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER amazon_rates_notify_insert AFTER INSERT ON amazon_rates
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_amazon_rates();
CREATE TRIGGER amazon_rates_notify_update AFTER UPDATE ON amazon_rates
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_amazon_rates();

CREATE FUNCTION notify_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cancelguard_reads', 'g');
    RETURN NULL;
END $$;

CREATE TRIGGER generations_notify AFTER UPDATE OF state ON generations
    FOR EACH STATEMENT EXECUTE FUNCTION notify_generation();

CREATE FUNCTION notify_orders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text;
BEGIN
    IF (SELECT count(*) FROM changed) <= 100 THEN
        SELECT string_agg(DISTINCT seller_account || '|' || marketplace_id || '|' || amazon_order_id, ' ')
            INTO keys FROM changed WHERE generation = active_generation();
        IF keys IS NOT NULL THEN
            PERFORM pg_notify('cancelguard_reads', 'o ' || keys);
        END IF;
    ELSE
        SELECT string_agg(DISTINCT seller_account || '|' || marketplace_id, ' ') INTO keys FROM changed
            WHERE generation = active_generation();
        IF keys IS NOT NULL THEN
            PERFORM pg_notify('cancelguard_reads', CASE WHEN length(keys) > 7000 THEN '*' ELSE 'O ' || keys END);
        END IF;
        -- '*' and 'O' drop more than the changed orders: a big batch is rare on one API's hot keys
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_notify_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_orders();
CREATE TRIGGER orders_notify_update AFTER UPDATE ON orders
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_orders();
CREATE TRIGGER orders_notify_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_orders();

-- an answer is the API's own row, one per call, of no generation
CREATE FUNCTION notify_answers() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text;
BEGIN
    SELECT string_agg(DISTINCT seller_account || '|' || marketplace_id || '|' || amazon_order_id, ' ')
        INTO keys FROM changed;
    IF keys IS NOT NULL THEN
        PERFORM pg_notify('cancelguard_reads', CASE WHEN length(keys) > 7000 THEN '*' ELSE 'o ' || keys END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER request_answers_notify_insert AFTER INSERT ON request_answers
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_answers();
CREATE TRIGGER request_answers_notify_update AFTER UPDATE ON request_answers
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_answers();

CREATE FUNCTION notify_request_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sellers text;
BEGIN
    SELECT string_agg(DISTINCT seller_account, ' ') INTO sellers FROM changed;
    IF sellers IS NOT NULL THEN
        PERFORM pg_notify('cancelguard_reads', CASE WHEN length(sellers) > 7000 THEN 'c *' ELSE 'c ' || sellers END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER request_changes_notify AFTER INSERT ON request_changes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_request_changes();
