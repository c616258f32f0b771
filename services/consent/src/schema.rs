// @generated automatically by Diesel CLI.

pub mod consent {
    pub mod sql_types {
        #[derive(diesel::sql_types::SqlType)]
        #[diesel(postgres_type(name = "xid8", schema = "pg_catalog"))]
        pub struct Xid8;
    }

    diesel::table! {
        consent.checkpoint_heads (checkpoint_id, subject_id) {
            checkpoint_id -> Uuid,
            subject_id -> Uuid,
            sequence -> Int8,
            hash -> Bytea,
        }
    }

    diesel::table! {
        consent.checkpoints (id) {
            id -> Uuid,
            taken_at -> Timestamptz,
            previous_id -> Nullable<Uuid>,
            subjects -> Int8,
            heads_digest -> Bytea,
            public_key -> Bytea,
            signature -> Bytea,
        }
    }

    diesel::table! {
        consent.erasures (request_id) {
            request_id -> Uuid,
            subject_id -> Uuid,
            completed_at -> Timestamptz,
        }
    }

    diesel::table! {
        consent.feed_cursors (feed) {
            feed -> Text,
            cursor -> Text,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use super::sql_types::Xid8;

        consent.ledger (id) {
            id -> Uuid,
            subject_id -> Uuid,
            sequence -> Int8,
            purpose_key -> Text,
            decision -> Text,
            channel -> Text,
            collection_point -> Text,
            notice_version -> Nullable<Text>,
            ip_hash -> Nullable<Text>,
            user_agent -> Nullable<Text>,
            form_id -> Nullable<Text>,
            expires_at -> Nullable<Timestamptz>,
            recorded_by -> Text,
            recorded_by_kind -> Text,
            recorded_at -> Timestamptz,
            previous_hash -> Bytea,
            hash -> Bytea,
            tx -> Xid8,
            feed_seq -> Int8,
        }
    }

    diesel::table! {
        consent.notices (purpose_key, version) {
            purpose_key -> Text,
            version -> Text,
            text -> Text,
            published_at -> Timestamptz,
        }
    }

    diesel::table! {
        consent.objections (subject_id) {
            subject_id -> Uuid,
            request_id -> Uuid,
            objected_at -> Timestamptz,
        }
    }

    diesel::table! {
        consent.purchases (subject_id) {
            subject_id -> Uuid,
            first_purchase_at -> Timestamptz,
            last_purchase_at -> Timestamptz,
        }
    }

    diesel::table! {
        consent.purposes (key) {
            key -> Text,
            id -> Uuid,
            description -> Text,
            lawful_basis -> Text,
            channels -> Array<Nullable<Text>>,
            data_categories -> Array<Nullable<Text>>,
            retention_days -> Int4,
            created_at -> Timestamptz,
            direct_marketing -> Bool,
        }
    }

    diesel::table! {
        consent.request_events (id) {
            id -> Uuid,
            request_id -> Uuid,
            from_status -> Nullable<Text>,
            to_status -> Text,
            principal -> Text,
            principal_kind -> Text,
            at -> Timestamptz,
            note -> Text,
        }
    }

    diesel::table! {
        consent.request_tasks (request_id, service, action) {
            request_id -> Uuid,
            service -> Text,
            action -> Text,
            state -> Text,
            attempts -> Int4,
            claim_id -> Nullable<Uuid>,
            last_error -> Nullable<Text>,
            next_attempt_at -> Timestamptz,
            sealed_result -> Nullable<Bytea>,
            completed_at -> Nullable<Timestamptz>,
            notified_recipients -> Array<Nullable<Text>>,
            corrected_fields -> Array<Nullable<Text>>,
            traceparent -> Nullable<Text>,
        }
    }

    diesel::table! {
        consent.requests (id) {
            id -> Uuid,
            subject_id -> Uuid,
            #[sql_name = "type"]
            type_ -> Text,
            status -> Text,
            channel -> Text,
            received_at -> Timestamptz,
            due_on -> Date,
            paused_since -> Nullable<Timestamptz>,
            paused_days -> Int4,
            extension_months -> Int4,
            extension_reason -> Nullable<Text>,
            rejection_reason -> Nullable<Text>,
            submitted_by -> Text,
            updated_at -> Timestamptz,
            sealed_corrections -> Nullable<Bytea>,
            corrected_fields -> Array<Nullable<Text>>,
            verification_code_salt -> Nullable<Bytea>,
            verification_code_mac -> Nullable<Bytea>,
            verification_code_expires_at -> Nullable<Timestamptz>,
            verification_failed_attempts -> Int4,
            verification_codes_sent -> Int4,
            verification_sent_at -> Nullable<Timestamptz>,
            verification_error -> Nullable<Text>,
            verification_message_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        consent.restrictions (subject_id) {
            subject_id -> Uuid,
            restricted -> Bool,
            request_id -> Uuid,
            changed_at -> Timestamptz,
        }
    }

    diesel::table! {
        consent.subject_merges (merged_subject_id) {
            merged_subject_id -> Uuid,
            into_subject_id -> Uuid,
            merged_at -> Timestamptz,
        }
    }

    diesel::joinable!(ledger -> purposes (purpose_key));
    diesel::joinable!(notices -> purposes (purpose_key));
    diesel::joinable!(request_events -> requests (request_id));
    diesel::joinable!(request_tasks -> requests (request_id));

    diesel::allow_tables_to_appear_in_same_query!(
        checkpoint_heads,
        checkpoints,
        erasures,
        feed_cursors,
        ledger,
        notices,
        objections,
        purchases,
        purposes,
        request_events,
        request_tasks,
        requests,
        restrictions,
        subject_merges,
    );
}
