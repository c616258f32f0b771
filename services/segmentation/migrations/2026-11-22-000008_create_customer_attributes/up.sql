-- The profile attributes rules can read, from profiles' created and updated changes: country,
-- locale and custom attributes, by their rule field name (`country`, `locale`,
-- `custom.<key>`), as text. No names, birth dates, addresses or identifiers ever come here.
-- Kept apart from `customers`: custom keys are open-ended.
CREATE TABLE customer_attributes (
    subject_id uuid NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (subject_id, key)
);
