//! Generates the gRPC types with the vendored protoc, so no system package is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("kartotek_descriptor.bin"))
        .compile_protos(
            &[
                "proto/kartotek/v1/kartotek.proto",
                "proto/kartotek/v1/record_types.proto",
                "proto/kartotek/v1/records.proto",
                "proto/kartotek/raft/v1/raft.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
