//! Compiles `proto/internal.proto` (the service nodes speak to each other on the p2p
//! port) with the vendored `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts run single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/internal.proto");
    tonic_prost_build::configure()
        .compile_protos(&[std::path::Path::new("proto/internal.proto")], &[std::path::Path::new("proto")])?;
    Ok(())
}
