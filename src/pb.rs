//! Code generated from `proto/` (package `clv.v1`) by `build.rs`: the wire
//! messages, the service traits and clients, and the encoded descriptors.
//! Below every other module (it imports none of them); the transport
//! re-exports it as `api::pb`.

#![allow(clippy::all, missing_docs)]
tonic::include_proto!("clv.v1");

/// Encoded descriptors of every clvd proto, for server reflection and for
/// the list of served methods ([`crate::grpc_method::served_methods`]).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clv_v1_descriptor.bin"));
