DROP TABLE revoked_tokens;
DROP TABLE login_attempts;
DROP TABLE operators;
DROP TABLE service_account_secrets;
DROP TABLE service_accounts;
DROP TABLE signing_keys;
