-- What KPIs read beyond orders and visits: the products of orders and returns, product views,
-- and survey scores. Subject ids, product ids and scores only: no free text.

-- One row per line item of an order or a return, for the products bought and returned.
CREATE TABLE order_lines (
    interaction_id uuid NOT NULL,
    -- The line's position in its interaction.
    line integer NOT NULL CHECK (line >= 0),
    subject_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('order', 'return')),
    product_id text NOT NULL,
    category text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (interaction_id, line)
);
CREATE INDEX order_lines_subject ON order_lines (subject_id);
CREATE INDEX order_lines_time ON order_lines (occurred_at);

-- Product views per customer, product and day, for the products viewed but rarely bought.
CREATE TABLE product_views (
    subject_id uuid NOT NULL,
    product_id text NOT NULL,
    day date NOT NULL,
    views integer NOT NULL CHECK (views > 0),
    PRIMARY KEY (subject_id, product_id, day)
);
CREATE INDEX product_views_day ON product_views (day);

-- Survey answers' scores, for CSAT and NPS.
CREATE TABLE survey_answers (
    interaction_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- 1 to 5; null when not asked.
    satisfaction smallint CHECK (satisfaction BETWEEN 1 AND 5),
    -- 0 to 10; null when not asked.
    nps smallint CHECK (nps BETWEEN 0 AND 10)
);
CREATE INDEX survey_answers_subject ON survey_answers (subject_id);
CREATE INDEX survey_answers_time ON survey_answers (occurred_at);
