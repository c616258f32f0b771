//! Compiles every `.proto` under the workspace's `proto/` folder, in pure Rust (protox), into
//! tonic clients and servers, and writes the encoded descriptor set used by server reflection.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // tonic-prost-build 0.14 prints no rerun-if-changed lines when given a descriptor set, so
    // name the folder (new files) and every file (edits) ourselves.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let mut protos = Vec::new();
    collect_protos(&proto_root, &mut protos)?;
    protos.sort();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let relative: Vec<PathBuf> = protos
        .iter()
        .map(|p| p.strip_prefix(&proto_root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&relative)?;
    fs::write(
        out_dir.join("ecrm_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Type names (`prost::Name`) let tools turn any message into its JSON form by name.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .include_file("ecrm_includes.rs")
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
