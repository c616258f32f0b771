//! The services of the suite, in port order, with the schema each owns.

/// One service of the suite as `ecrm up` runs it.
#[derive(Debug)]
pub struct Member {
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
        name: "identity",
        schema: "identity",
        port_offset: 0,
    },
    Member {
        name: "profiles",
        schema: "profiles",
        port_offset: 1,
    },
    Member {
        name: "consent",
        schema: "consent",
        port_offset: 2,
    },
    Member {
        name: "segmentation",
        schema: "segmentation",
        port_offset: 3,
    },
    Member {
        name: "outbound",
        schema: "outbound",
        port_offset: 4,
    },
];
