//! The layers drawn in `src/lib.rs` hold: every module names (`crate::x`)
//! only modules of lower layers, outside its unit tests, and every module of
//! `src/` is in the drawing exactly once.

use std::collections::BTreeMap;
use std::fs;

/// Module → layer, from the numbered lines of the drawing in `src/lib.rs`.
fn drawing() -> BTreeMap<String, usize> {
    let lib = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let mut layers = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else { continue };
        let Some((n, mods)) = rest.split_once(". ") else { continue };
        let Ok(n) = n.parse::<usize>() else { continue };
        for m in mods.split(", ") {
            assert!(layers.insert(m.trim().to_string(), n).is_none(), "{m} is drawn twice");
        }
    }
    layers
}

/// The modules a source file names outside its unit tests and comments.
fn imports(src: &str) -> Vec<String> {
    let code = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn no_module_names_a_module_of_its_own_or_a_higher_layer() {
    let layers = drawing();
    assert!(layers.len() > 10, "the drawing in src/lib.rs was not found: {layers:?}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut upward = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "rs") || name == "lib" {
            continue;
        }
        let Some(&own) = layers.get(&name) else {
            upward.push(format!("src/{name}.rs is not in the drawing of src/lib.rs"));
            continue;
        };
        for dep in imports(&fs::read_to_string(&path).unwrap()) {
            match layers.get(&dep) {
                Some(&l) if l < own || dep == name => {}
                Some(&l) => upward.push(format!("{name} (layer {own}) names {dep} (layer {l})")),
                None => upward.push(format!("{name} names {dep}, which is not in the drawing")),
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(upward.is_empty(), "imports against the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    let src = "use crate::heap::Heap;\n// crate::gc in a comment\n#[cfg(test)]\nmod tests {\n    use crate::capi;\n}\n";
    assert_eq!(imports(src), vec!["heap".to_string()]);
}
