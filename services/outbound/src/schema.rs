// @generated automatically by Diesel CLI.

pub mod outbound {
    diesel::table! {
        outbound.suppressions (id) {
            id -> Uuid,
            channel -> Text,
            address_index -> Text,
            scope -> Text,
            reason -> Text,
            note -> Text,
            created_by -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbound.templates (key, channel, locale) {
            key -> Text,
            channel -> Text,
            locale -> Text,
            subject -> Text,
            body -> Text,
            variables -> Array<Nullable<Text>>,
            version -> Int4,
            updated_by -> Text,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbound.unsubscribes (unsubscribe_id) {
            unsubscribe_id -> Uuid,
            subject_id -> Uuid,
            channel -> Text,
            purpose_key -> Text,
            requested_at -> Timestamptz,
            ip_hash -> Nullable<Text>,
            user_agent -> Nullable<Text>,
            forwarded_at -> Nullable<Timestamptz>,
            refused_at -> Nullable<Timestamptz>,
            attempts -> Int4,
            last_error -> Nullable<Text>,
            next_attempt_at -> Timestamptz,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(suppressions, templates, unsubscribes,);
}
