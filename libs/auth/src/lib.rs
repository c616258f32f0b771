//! Authentication and authorization of every RPC in the suite.
//!
//! Tokens are JWTs signed by the identity service with Ed25519 (`EdDSA`). Each service holds a
//! [`Verifier`]: the identity service's public keys and its revocation list, kept in memory and
//! refreshed in the background (and at once on an unknown `kid`), never fetched per request.
//! The [`AuthLayer`] authenticates every call against the suite-wide [`methods`] table, which
//! names the scope each method needs and refuses any method it does not list.

mod claims;
mod error;
mod identity_trust;
mod jwks;
mod layer;
pub mod methods;
mod principal;
mod scope;
mod service_tokens;
mod signer;
pub mod tls;
mod trace_context;
mod verifier;

pub use claims::{Claims, DEFAULT_TOKEN_LIFETIME, MAX_LEEWAY, MAX_TOKEN_LIFETIME};
pub use error::AuthError;
pub use identity_trust::{IdentityTrust, ServiceCredentials};
pub use jwks::{Jwk, JwkSet};
pub use layer::{Auth, AuthLayer};
pub use methods::Access;
pub use principal::{
    MAX_PARTNER_ID_CHARS, OperatorRole, Principal, PrincipalKind, is_valid_partner_id,
};
pub use scope::{Scope, Scopes, UnknownScope};
pub use service_tokens::{AccountCredentials, ServiceTokens, TokenSource, bearer_request};
pub use signer::{SignError, TokenSigner};
pub use trace_context::inject_trace_context;
pub use verifier::{
    SourceError, StaticTrust, TrustSnapshot, TrustSource, Verifier, VerifierConfig,
};
