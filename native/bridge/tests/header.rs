//! The committed C header must be exactly what cbindgen generates from the
//! current source. Set EVB_UPDATE_HEADER=1 to rewrite it instead.

use std::path::PathBuf;

#[test]
fn committed_header_matches_cbindgen_output() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let path = crate_dir.join("../include/evbridge.h");
    if std::env::var_os("EVB_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/ffi.rs; run: EVB_UPDATE_HEADER=1 cargo test --test header",
        path.display()
    );
}
