// @generated automatically by Diesel CLI.

pub mod consent {
    diesel::table! {
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
        consent.purposes (key) {
            key -> Text,
            id -> Uuid,
            description -> Text,
            lawful_basis -> Text,
            channels -> Array<Nullable<Text>>,
            data_categories -> Array<Nullable<Text>>,
            retention_days -> Int4,
            created_at -> Timestamptz,
        }
    }

    diesel::joinable!(ledger -> purposes (purpose_key));
    diesel::joinable!(notices -> purposes (purpose_key));

    diesel::allow_tables_to_appear_in_same_query!(ledger, notices, purposes,);
}
