//! Generates include/gcpin.h from the Rust sources with cbindgen.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // libgcpin.so's SONAME: programs record libgcpin.so.0, and `make install`
    // adds the usual libgcpin.so -> libgcpin.so.0 -> libgcpin.so.0.1.0 links.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgcpin.so.0");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml is valid");
    let header = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header");
    let out = format!("{dir}/include/gcpin.h");
    // Write only when the text changes, so an up-to-date header keeps its mtime.
    let mut text = Vec::new();
    header.write(&mut text);
    if std::fs::read(&out).ok().as_deref() != Some(&text[..]) {
        std::fs::create_dir_all(format!("{dir}/include")).expect("include/ can be created");
        std::fs::write(&out, &text).expect("include/gcpin.h can be written");
    }
}
