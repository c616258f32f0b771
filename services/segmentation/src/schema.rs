// @generated automatically by Diesel CLI.

pub mod segmentation {
    pub mod sql_types {
        #[derive(diesel::sql_types::SqlType)]
        #[diesel(postgres_type(name = "xid8", schema = "pg_catalog"))]
        pub struct Xid8;
    }

    diesel::table! {
        segmentation.customers (subject_id) {
            subject_id -> Uuid,
            created_at -> Timestamptz,
            restricted -> Bool,
            first_purchase_at -> Nullable<Timestamptz>,
            last_purchase_at -> Nullable<Timestamptz>,
            order_count -> Int4,
            return_count -> Int4,
            monetary_minor -> Int8,
            unvalued_count -> Int4,
            visit_days -> Int4,
            last_visit_at -> Nullable<Timestamptz>,
            last_interaction_at -> Nullable<Timestamptz>,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.customer_attributes (subject_id, key) {
            subject_id -> Uuid,
            key -> Text,
            value -> Text,
        }
    }

    diesel::table! {
        segmentation.daily_visits (subject_id, day) {
            subject_id -> Uuid,
            day -> Date,
            views -> Int4,
        }
    }

    diesel::table! {
        segmentation.erasures (request_id) {
            request_id -> Uuid,
            subject_id -> Uuid,
            receipt -> Jsonb,
            completed_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.feed_cursors (feed) {
            feed -> Text,
            cursor -> Text,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use super::sql_types::Xid8;

        segmentation.membership_horizon (only_row) {
            only_row -> Bool,
            tx -> Xid8,
            seq -> Int8,
        }
    }

    diesel::table! {
        segmentation.membership_checks (segment, subject_id) {
            segment -> Text,
            subject_id -> Uuid,
            due_at -> Timestamptz,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use super::sql_types::Xid8;

        segmentation.membership_events (seq) {
            seq -> Int8,
            tx -> Xid8,
            segment -> Text,
            subject_id -> Uuid,
            joined -> Bool,
            reason -> Text,
            occurred_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.order_lines (interaction_id, line) {
            interaction_id -> Uuid,
            line -> Int4,
            subject_id -> Uuid,
            kind -> Text,
            product_id -> Text,
            category -> Text,
            quantity -> Int4,
            occurred_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.memberships (segment, subject_id) {
            segment -> Text,
            subject_id -> Uuid,
            joined_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.orders (interaction_id) {
            interaction_id -> Uuid,
            subject_id -> Uuid,
            kind -> Text,
            order_id -> Text,
            occurred_at -> Timestamptz,
            amount_minor -> Int8,
            currency -> Text,
            reporting_minor -> Nullable<Int8>,
        }
    }

    diesel::table! {
        segmentation.product_views (subject_id, product_id, day) {
            subject_id -> Uuid,
            product_id -> Text,
            day -> Date,
            views -> Int4,
        }
    }

    diesel::table! {
        segmentation.profiling_objections (subject_id) {
            subject_id -> Uuid,
            objected_at -> Timestamptz,
            entry_id -> Uuid,
        }
    }

    diesel::table! {
        segmentation.rfm_jobs (id) {
            id -> Uuid,
            state -> Text,
            as_of -> Date,
            window_days -> Int4,
            bins -> Int4,
            currency -> Text,
            steps_done -> Int4,
            steps_total -> Int4,
            customers -> Nullable<Int8>,
            started_at -> Timestamptz,
            finished_at -> Nullable<Timestamptz>,
            error -> Nullable<Text>,
        }
    }

    diesel::table! {
        segmentation.rfm_scores (job_id, subject_id) {
            job_id -> Uuid,
            subject_id -> Uuid,
            recency_days -> Int4,
            frequency -> Int4,
            monetary_minor -> Int8,
            r -> Nullable<Int2>,
            f -> Nullable<Int2>,
            m -> Nullable<Int2>,
            segment -> Nullable<Text>,
        }
    }

    diesel::table! {
        segmentation.segments (name) {
            name -> Text,
            description -> Text,
            rule -> Text,
            fields -> Array<Nullable<Text>>,
            created_by -> Text,
            created_at -> Timestamptz,
            sweeping -> Bool,
            sweep_after -> Nullable<Uuid>,
            populated_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        segmentation.tier_programs (name) {
            name -> Text,
            description -> Text,
            measure -> Text,
            window_days -> Int4,
            tiers -> Jsonb,
            retain_days -> Int4,
            downgrade -> Text,
            created_by -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        segmentation.survey_answers (interaction_id) {
            interaction_id -> Uuid,
            subject_id -> Uuid,
            occurred_at -> Timestamptz,
            satisfaction -> Nullable<Int2>,
            nps -> Nullable<Int2>,
        }
    }

    diesel::joinable!(membership_checks -> segments (segment));
    diesel::joinable!(membership_events -> segments (segment));
    diesel::joinable!(memberships -> segments (segment));

    diesel::allow_tables_to_appear_in_same_query!(
        customer_attributes,
        customers,
        daily_visits,
        erasures,
        feed_cursors,
        membership_checks,
        membership_events,
        membership_horizon,
        memberships,
        order_lines,
        orders,
        product_views,
        profiling_objections,
        rfm_jobs,
        rfm_scores,
        segments,
        survey_answers,
        tier_programs,
    );
}
