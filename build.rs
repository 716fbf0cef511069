//! Generates the Milvus gRPC client from the protobuf definitions vendored in
//! `src/connectors/milvus/proto/` (milvus-proto, Apache-2.0), with the protoc
//! that `protoc-bin-vendored` ships, so nothing has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const DIR: &str = "src/connectors/milvus/proto";
    println!("cargo:rerun-if-changed={DIR}");
    // SAFETY: the build script is single-threaded; prost-build reads PROTOC.
    if std::env::var_os("PROTOC").is_none() {
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let include = protoc_bin_vendored::include_path()?;
    let dir = std::path::PathBuf::from(DIR);
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos(&[dir.join("milvus.proto")], &[dir, include])?;
    Ok(())
}
