-- Segmentation's projection of the profiles change feed: per customer, what scores, segments,
-- tiers and KPIs read. Subject ids only: no names, no contact details.

-- Where the follower has read the feed to, moved with what each batch of changes caused.
CREATE TABLE feed_cursors (
    feed text PRIMARY KEY,
    cursor text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per live customer. Erased customers are deleted; merged ones are folded into the
-- survivor.
CREATE TABLE customers (
    subject_id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    -- Processing restricted (GDPR Art. 18): in no segment and no score while set.
    restricted boolean NOT NULL DEFAULT false,
    first_purchase_at timestamptz,
    last_purchase_at timestamptz,
    order_count integer NOT NULL DEFAULT 0 CHECK (order_count >= 0),
    return_count integer NOT NULL DEFAULT 0 CHECK (return_count >= 0),
    -- Orders less returns, in minor units of the reporting currency.
    monetary_minor bigint NOT NULL DEFAULT 0,
    -- Orders and returns in a currency with no configured rate: counted, not valued.
    unvalued_count integer NOT NULL DEFAULT 0 CHECK (unvalued_count >= 0),
    -- Days with at least one page or product view.
    visit_days integer NOT NULL DEFAULT 0 CHECK (visit_days >= 0),
    last_visit_at timestamptz,
    last_interaction_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Orders and returns, for windows: orders in the last N days, rolling tiers, RFM look-back.
CREATE TABLE orders (
    interaction_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('order', 'return')),
    order_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- As recorded: never negative, in `currency`.
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL,
    -- In the reporting currency, at the rate configured when projected; null without a rate.
    reporting_minor bigint
);
CREATE INDEX orders_subject ON orders (subject_id, occurred_at);
CREATE INDEX orders_time ON orders (occurred_at);

-- Page and product views per customer and day, for visits and conversion.
CREATE TABLE daily_visits (
    subject_id uuid NOT NULL,
    day date NOT NULL,
    views integer NOT NULL CHECK (views > 0),
    PRIMARY KEY (subject_id, day)
);
CREATE INDEX daily_visits_day ON daily_visits (day);

-- Erasures carried out, so a repeated request answers with the same receipt.
CREATE TABLE erasures (
    request_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    receipt jsonb NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);
