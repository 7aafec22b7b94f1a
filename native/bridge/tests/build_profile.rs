//! The panic boundaries need unwinding. This fails if any Cargo profile
//! switches to `panic = "abort"` (src/lib.rs also refuses to compile then).
#![cfg(not(loom))]

#[test]
fn every_profile_unwinds() {
    // The lib's compile_error! covers the build itself; this covers the manifest.
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let doc: toml::Table = manifest.parse().unwrap();
    let profiles = doc.get("profile").and_then(|p| p.as_table()).expect("[profile.*] present");
    for name in ["release", "dev"] {
        let p = profiles.get(name).and_then(|p| p.as_table()).unwrap_or_else(|| panic!("[profile.{name}] present"));
        assert_eq!(p.get("panic").and_then(|v| v.as_str()), Some("unwind"), "profile.{name}.panic");
    }
    for (name, p) in profiles {
        let panic = p.get("panic").and_then(|v| v.as_str());
        assert_ne!(panic, Some("abort"), "profile.{name} sets panic = \"abort\"");
    }
}
