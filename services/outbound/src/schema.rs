// @generated automatically by Diesel CLI.

pub mod outbound {
    diesel::table! {
        outbound.campaign_recipients (campaign_id, subject_id) {
            campaign_id -> Uuid,
            subject_id -> Uuid,
        }
    }

    diesel::table! {
        outbound.campaigns (campaign_id) {
            campaign_id -> Uuid,
            name -> Text,
            segment -> Nullable<Text>,
            channel -> Text,
            template_key -> Text,
            locale -> Nullable<Text>,
            variables -> Jsonb,
            purpose_key -> Text,
            marketing -> Bool,
            scheduled_at -> Nullable<Timestamptz>,
            per_second -> Nullable<Int4>,
            state -> Text,
            recipients -> Int4,
            created_by -> Text,
            created_at -> Timestamptz,
            started_at -> Nullable<Timestamptz>,
            finished_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        outbound.channel_pauses (channel) {
            channel -> Text,
            paused_until -> Timestamptz,
            detail -> Text,
        }
    }

    diesel::table! {
        outbound.erasures (request_id) {
            request_id -> Uuid,
            subject_id -> Uuid,
            receipt -> Jsonb,
            completed_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbound.messages (message_id) {
            message_id -> Uuid,
            subject_id -> Uuid,
            campaign_id -> Nullable<Uuid>,
            idempotency_key -> Nullable<Text>,
            channel -> Text,
            purpose_key -> Text,
            marketing -> Bool,
            template_key -> Text,
            locale -> Nullable<Text>,
            variables -> Jsonb,
            status -> Text,
            reason -> Nullable<Text>,
            detail -> Text,
            attempts -> Int4,
            due_at -> Timestamptz,
            claimed_by -> Nullable<Uuid>,
            claimed_until -> Nullable<Timestamptz>,
            rendered_locale -> Nullable<Text>,
            template_version -> Nullable<Int4>,
            provider_id -> Nullable<Text>,
            requested_by -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            sent_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        outbound.restrictions (subject_id) {
            subject_id -> Uuid,
            restricted_at -> Timestamptz,
            request_id -> Uuid,
        }
    }

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

    diesel::joinable!(campaign_recipients -> campaigns (campaign_id));
    diesel::joinable!(messages -> campaigns (campaign_id));

    diesel::allow_tables_to_appear_in_same_query!(
        campaign_recipients,
        campaigns,
        channel_pauses,
        erasures,
        messages,
        restrictions,
        suppressions,
        templates,
        unsubscribes,
    );
}
