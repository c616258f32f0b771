// @generated automatically by Diesel CLI.

pub mod identity {
    diesel::table! {
        identity.login_attempts (attempt_key) {
            attempt_key -> Text,
            name_key -> Text,
            failures -> Int4,
            pending -> Int4,
            last_attempt_at -> Timestamptz,
            blocked_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        identity.operators (id) {
            id -> Uuid,
            username -> Text,
            password_hash -> Text,
            roles -> Array<Nullable<Text>>,
            created_at -> Timestamptz,
            password_changed_at -> Timestamptz,
            disabled_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        identity.revoked_tokens (jti) {
            jti -> Text,
            expires_at -> Timestamptz,
            revoked_at -> Timestamptz,
        }
    }

    diesel::table! {
        identity.service_account_secrets (id) {
            id -> Uuid,
            account_id -> Uuid,
            secret_hash -> Text,
            created_at -> Timestamptz,
            expires_at -> Nullable<Timestamptz>,
            removed_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        identity.service_accounts (id) {
            id -> Uuid,
            client_id -> Text,
            display_name -> Text,
            kind -> Text,
            partner_id -> Nullable<Text>,
            scopes -> Array<Nullable<Text>>,
            created_at -> Timestamptz,
            disabled_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        identity.sessions (id) {
            id -> Uuid,
            principal_id -> Uuid,
            principal_kind -> Text,
            token_digest -> Bytea,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
            ended_at -> Nullable<Timestamptz>,
            last_used_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        identity.signing_keys (kid) {
            kid -> Text,
            state -> Text,
            public_key -> Bytea,
            private_key_sealed -> Bytea,
            created_at -> Timestamptz,
            activated_at -> Nullable<Timestamptz>,
            retired_at -> Nullable<Timestamptz>,
            verify_until -> Nullable<Timestamptz>,
        }
    }

    diesel::joinable!(service_account_secrets -> service_accounts (account_id));

    diesel::allow_tables_to_appear_in_same_query!(
        login_attempts,
        operators,
        revoked_tokens,
        service_account_secrets,
        service_accounts,
        sessions,
        signing_keys,
    );
}
