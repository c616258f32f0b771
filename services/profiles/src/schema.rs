// @generated automatically by Diesel CLI.

pub mod profiles {
    pub mod sql_types {
        #[derive(diesel::sql_types::SqlType)]
        #[diesel(postgres_type(name = "xid8", schema = "pg_catalog"))]
        pub struct Xid8;
    }

    diesel::table! {
        profiles.access_log (id) {
            id -> Uuid,
            subject_id -> Uuid,
            principal -> Text,
            principal_kind -> Text,
            partner_id -> Nullable<Text>,
            on_behalf_of -> Nullable<Text>,
            purpose -> Text,
            method -> Text,
            action -> Text,
            at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.attribute_definitions (key) {
            key -> Text,
            value_type -> Text,
            description -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.attribute_values (id) {
            id -> Uuid,
            subject_id -> Uuid,
            name -> Text,
            sealed_value -> Nullable<Bytea>,
            source -> Text,
            recorded_at -> Timestamptz,
            current -> Bool,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use super::sql_types::Xid8;

        profiles.changes (seq) {
            seq -> Int8,
            tx -> Xid8,
            subject_id -> Uuid,
            kind -> Text,
            occurred_at -> Timestamptz,
            merged_subject_id -> Nullable<Uuid>,
            restricted -> Nullable<Bool>,
            interaction_id -> Nullable<Uuid>,
        }
    }

    diesel::table! {
        profiles.disclosures (id) {
            id -> Uuid,
            subject_id -> Uuid,
            partner_id -> Text,
            fields -> Array<Nullable<Text>>,
            disclosed_at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.erasures (request_id) {
            request_id -> Uuid,
            subject_id -> Uuid,
            receipt -> Jsonb,
            completed_at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.identifiers (id) {
            id -> Uuid,
            subject_id -> Uuid,
            kind -> Text,
            partner_id -> Nullable<Text>,
            custom_type -> Nullable<Text>,
            lookup -> Text,
            sealed_value -> Bytea,
            verified_at -> Nullable<Timestamptz>,
            verification_method -> Nullable<Text>,
            source -> Text,
            added_at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.interactions (id) {
            id -> Uuid,
            event_id -> Text,
            subject_id -> Nullable<Uuid>,
            kind -> Text,
            channel -> Text,
            occurred_at -> Timestamptz,
            recorded_at -> Timestamptz,
            order_id -> Nullable<Text>,
            amount_minor -> Nullable<Int8>,
            currency -> Nullable<Text>,
            sealed_payload -> Nullable<Bytea>,
            expires_at -> Timestamptz,
            origin -> Text,
        }
    }

    diesel::table! {
        profiles.merges (id) {
            id -> Uuid,
            subject_id -> Uuid,
            merged_subject_id -> Uuid,
            sealed_reason -> Bytea,
            principal -> Text,
            merged_at -> Timestamptz,
        }
    }

    diesel::table! {
        profiles.profiles (subject_id) {
            subject_id -> Uuid,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            restricted_at -> Nullable<Timestamptz>,
            merged_into -> Nullable<Uuid>,
            merged_at -> Nullable<Timestamptz>,
            erased_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        profiles.recipient_notices (id) {
            id -> Uuid,
            partner_id -> Text,
            subject_id -> Uuid,
            kind -> Text,
            fields -> Array<Nullable<Text>>,
            request_id -> Uuid,
            issued_at -> Timestamptz,
            acknowledged_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        profiles.subject_keys (subject_id) {
            subject_id -> Uuid,
            wrapped_key -> Bytea,
            created_at -> Timestamptz,
        }
    }

    diesel::joinable!(attribute_values -> profiles (subject_id));
    diesel::joinable!(identifiers -> profiles (subject_id));
    diesel::joinable!(interactions -> profiles (subject_id));

    diesel::allow_tables_to_appear_in_same_query!(
        access_log,
        attribute_definitions,
        attribute_values,
        changes,
        disclosures,
        erasures,
        identifiers,
        interactions,
        merges,
        profiles,
        recipient_notices,
        subject_keys,
    );
}
