//! `crds/` must be exactly what the code generates: one `<name>.yaml` per CRD.

use std::collections::BTreeMap;

const REGENERATE: &str = "regenerate with: cargo run -- crd --out-dir crds";

#[test]
fn crds_directory_matches_generated_output() {
    let generated: BTreeMap<String, String> = redblack::cli::crd::rendered()
        .unwrap()
        .into_iter()
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut on_disk = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            on_disk.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let missing: Vec<_> = generated
        .keys()
        .filter(|k| !on_disk.contains_key(*k))
        .collect();
    let stale: Vec<_> = on_disk
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "crds/ lacks {missing:?}; {REGENERATE}");
    assert!(
        stale.is_empty(),
        "crds/ has files no CRD generates: {stale:?}; delete them and {REGENERATE}"
    );
    for (name, yaml) in &generated {
        assert!(
            on_disk[name] == *yaml,
            "crds/{name} differs from the generated CRD; {REGENERATE}"
        );
    }
}

#[test]
fn stdout_stream_is_every_crd_in_file_order() {
    let files = redblack::cli::crd::rendered().unwrap();
    let stream = redblack::cli::crd::multi_document(&files);
    assert_eq!(stream.lines().filter(|l| *l == "---").count(), files.len());
    assert!(stream.contains("name: rollouts.redblack.io"));
}
