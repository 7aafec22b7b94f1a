//! The committed C headers must be exactly what cbindgen generates from the
//! current source, and `evb_status_name` must name every status as the
//! header spells it. Set EVB_UPDATE_HEADER=1 to rewrite the headers instead.
#![cfg(not(loom))]

use std::path::PathBuf;

fn check(config: &str, header: &str) {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join(config)).expect("read cbindgen config");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let path = crate_dir.join("../include").join(header);
    if std::env::var_os("EVB_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/; run: EVB_UPDATE_HEADER=1 cargo test --test header",
        path.display()
    );
}

#[test]
fn committed_bridge_header_matches_cbindgen_output() {
    check("cbindgen.toml", "evbridge.h");
}

#[test]
fn committed_plugin_header_matches_cbindgen_output() {
    check("cbindgen-plugin.toml", "evb_plugin.h");
}

#[test]
fn status_names_are_the_header_names() {
    use strum::IntoEnumIterator;
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/evb_plugin.h")).unwrap();
    for s in evbridge::abi::EvbStatus::iter() {
        // SAFETY: evb_status_name returns a static NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(evbridge::ffi::evb_status_name(s as i32)) }.to_str().unwrap().to_owned();
        assert!(header.contains(&format!("{name} = {}", s as i32)), "{name} = {} is not in evb_plugin.h", s as i32);
    }
    // SAFETY: as above.
    let unknown = unsafe { std::ffi::CStr::from_ptr(evbridge::ffi::evb_status_name(12345)) };
    assert_eq!(unknown.to_str().unwrap(), "EVB_STATUS_UNKNOWN");
}
