//! Compiles proto/ with protox (pure Rust, no system protoc) and generates
//! the tonic + prost code, plus the encoded descriptor set that the
//! reflection services serve.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/clv/v1/common.proto",
        "proto/clv/v1/ingest.proto",
        "proto/clv/v1/model.proto",
        "proto/clv/v1/report.proto",
        "proto/clv/v1/scoring.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("clv_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
