//! The eCRM contracts as Rust types, tonic clients and tonic servers, generated at build time
//! from every `.proto` under the workspace's `proto/` folder.
//!
//! Modules follow the protobuf packages: `ecrm::common::v1`, `ecrm::privacy::v1`, and one
//! `ecrm::<area>::v1` per service.

#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::allow_attributes_without_reason,
    reason = "generated code is not ours to lint"
)]

include!(concat!(env!("OUT_DIR"), "/ecrm_includes.rs"));

/// The encoded `FileDescriptorSet` of every contract and its imports, with source info, for
/// gRPC server reflection and for tests that enumerate every method of every service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ecrm_descriptor.bin"));
