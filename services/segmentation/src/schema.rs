// @generated automatically by Diesel CLI.

pub mod segmentation {
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

    diesel::allow_tables_to_appear_in_same_query!(
        customers,
        daily_visits,
        erasures,
        feed_cursors,
        orders,
    );
}
