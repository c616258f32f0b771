-- Purposes of direct marketing: an objection (Art. 21(2), (3)) ends every one of them.
ALTER TABLE purposes ADD COLUMN direct_marketing boolean NOT NULL DEFAULT false;

-- Subjects who objected to direct marketing, and when: from then on every direct-marketing
-- purpose is denied to them unless they grant it again themselves.
CREATE TABLE objections (
    subject_id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    objected_at timestamptz NOT NULL
);
