//! Why the suite could not start or stop.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(
        "role prefix {0:?} is not a plain lower-case sql identifier short enough for every role"
    )]
    RolePrefix(String),
    #[error("base port {0} leaves no room for the {count} services below port 65535", count = crate::Member::ALL.len())]
    BasePort(u16),
    #[error("cannot listen on {addr} for {service}")]
    Bind {
        service: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Provision(#[from] ecrm_platform::db::ProvisionError),
    #[error("cannot generate a password: the system random generator failed")]
    Random,
    #[error("cannot migrate the {service} schema")]
    Migrate {
        service: &'static str,
        #[source]
        source: ecrm_platform::db::MigrationError,
    },
    #[error("cannot open the {service} database pool")]
    Pool {
        service: &'static str,
        #[source]
        source: ecrm_platform::DbError,
    },
    #[error("cannot drop role {role}")]
    DropRole {
        role: String,
        #[source]
        source: ecrm_platform::DbError,
    },
    #[error("cannot start the identity service")]
    Identity(#[from] ecrm_identity::IdentityError),
    #[error("cannot start the profiles service")]
    Profiles(#[from] ecrm_profiles::ProfilesError),
    #[error("cannot start the consent service")]
    Consent(#[from] ecrm_consent::ConsentError),
    #[error("cannot start the segmentation service")]
    Segmentation(#[from] ecrm_segmentation::SegmentationError),
    #[error("cannot start the outbound service")]
    Outbound(#[from] ecrm_outbound::OutboundError),
    #[error("{0} needs the identity service, which is not running")]
    NoIdentity(&'static str),
    #[error(transparent)]
    Serve(#[from] ecrm_platform::server::ServeError),
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot reach {member}")]
    Channel {
        member: crate::Member,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Tls(#[from] ecrm_auth::tls::TlsError),
    #[error("stopped before every service had started")]
    Cancelled,
}
