//! The services of the suite, in port order, with the schema each owns.

use ecrm_platform::ServiceDef;

/// One service of the suite as `ecrm up` runs it.
#[derive(Debug)]
pub struct Member {
    /// The service's definition (schema, migrations) once it is built; until then its port
    /// serves health and reflection only.
    pub def: Option<&'static ServiceDef>,
    /// Its name, as printed and used in logs.
    pub name: &'static str,
    /// The PostgreSQL schema it owns; its role is `ecrm_<schema>`.
    pub schema: &'static str,
    /// Its port is the base port plus this.
    pub port_offset: u16,
}

impl Member {
    /// The PostgreSQL role the service connects as.
    pub fn role(&self) -> String {
        format!("ecrm_{}", self.schema)
    }
}

/// Every service, in the order of their default ports (50051 to 50055).
pub const MEMBERS: [Member; 5] = [
    Member {
        def: Some(&ecrm_identity::SERVICE),
        name: "identity",
        schema: "identity",
        port_offset: 0,
    },
    Member {
        def: Some(&ecrm_profiles::SERVICE),
        name: "profiles",
        schema: "profiles",
        port_offset: 1,
    },
    Member {
        def: Some(&ecrm_consent::SERVICE),
        name: "consent",
        schema: "consent",
        port_offset: 2,
    },
    Member {
        def: Some(&ecrm_segmentation::SERVICE),
        name: "segmentation",
        schema: "segmentation",
        port_offset: 3,
    },
    Member {
        def: Some(&ecrm_outbound::SERVICE),
        name: "outbound",
        schema: "outbound",
        port_offset: 4,
    },
];
