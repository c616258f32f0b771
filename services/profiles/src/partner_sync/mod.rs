//! `ecrm.profiles.v1.PartnerSync`: partners sync their customers and pull what those customers
//! share with them.

pub mod domain;
pub mod grpc;
