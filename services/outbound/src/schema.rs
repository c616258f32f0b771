// @generated automatically by Diesel CLI.

pub mod outbound {
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
}
