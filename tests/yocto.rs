//! The Yocto layer agrees with the tree: `veil-crates.inc` lists exactly the crates.io packages
//! of `Cargo.lock` with their checksums, and the recipe's licence checksums and installed files
//! exist.

mod common;

use std::collections::BTreeMap;

use common::root;

const RECIPE_DIR: &str = "yocto/meta-veil/recipes-veil/veil";
const REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";

#[test]
fn the_crates_include_matches_cargo_lock() {
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(root().join("Cargo.lock")).unwrap()).unwrap();
    let locked: BTreeMap<String, String> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").and_then(|s| s.as_str()) == Some(REGISTRY))
        .map(|p| {
            let id = format!("{}-{}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
            (id, p["checksum"].as_str().unwrap().to_string())
        })
        .collect();
    let inc = std::fs::read_to_string(root().join(RECIPE_DIR).join("veil-crates.inc")).unwrap();
    let fetched: Vec<String> = inc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("crate://crates.io/"))
        .map(|l| l.trim_end_matches(" \\").replacen('/', "-", 1))
        .collect();
    let sums: BTreeMap<String, String> = inc
        .lines()
        .filter_map(|l| l.strip_prefix("SRC_URI["))
        .map(|l| {
            let (id, rest) = l.split_once(".sha256sum] = \"").unwrap();
            (id.to_string(), rest.trim_end_matches('"').to_string())
        })
        .collect();
    let hint = "run yocto/update-crates.py (or bitbake -c update_crates veil)";
    assert_eq!(fetched.iter().cloned().collect::<Vec<_>>(), locked.keys().cloned().collect::<Vec<_>>(), "{hint}");
    assert_eq!(sums, locked, "{hint}");
    assert!(locked.len() > 100);
}

#[test]
fn the_recipe_builds_with_cargo_and_installs_what_exists() {
    let recipe = std::fs::read_to_string(root().join(RECIPE_DIR).join("veil_0.1.0.bb")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(root().join(RECIPE_DIR).join(format!("veil_{version}.bb")).is_file(), "the recipe is named for {version}");
    assert!(recipe.contains("inherit cargo cargo-update-recipe-crates systemd"));
    assert!(recipe.contains("require ${BPN}-crates.inc"));
    // Licence checksums are of the files in the tree.
    for entry in recipe.split("file://").skip(1) {
        let (file, rest) = entry.split_once(";md5=").unwrap();
        let md5: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        let out = std::process::Command::new("md5sum").arg(root().join(file)).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&md5), "{file}: md5 {md5} is stale");
    }
    // Everything it installs from the source tree is there.
    for path in recipe.split("${S}/").skip(1).map(|p| p.split_whitespace().next().unwrap()) {
        assert!(root().join(path).exists(), "the recipe installs {path}, which does not exist");
    }
    let layer = std::fs::read_to_string(root().join("yocto/meta-veil/conf/layer.conf")).unwrap();
    assert!(layer.contains("BBFILE_COLLECTIONS += \"veil\"") && layer.contains("LAYERSERIES_COMPAT_veil"));
}
