//! Compiles `proto/qdrant.proto` with the vendored `protoc`, so a fresh machine needs
//! no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts run single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/qdrant.proto");
    // The well-known types (google/protobuf/timestamp.proto) ship with the vendored protoc.
    let include = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure().build_client(false).compile_protos(
        &[std::path::Path::new("proto/qdrant.proto")],
        &[std::path::Path::new("proto"), &include],
    )?;
    Ok(())
}
