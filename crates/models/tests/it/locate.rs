//! `locate`: what a spec's `model:` names, checked from files on disk without loading them.

use std::path::Path;

use models::{Error, Located, locate_in};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A minimal safetensors file: an 8-byte little-endian header length, then the JSON header.
fn safetensors() -> Vec<u8> {
    let header = br#"{"__metadata__":{}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes
}

#[test]
fn relative_paths_resolve_from_the_spec_folder() {
    let home = tempfile::tempdir().unwrap();
    let spec_dir = tempfile::tempdir().unwrap();
    write(&spec_dir.path().join("weights/m.gguf"), b"GGUF\x03\0\0\0");
    let found = locate_in(home.path(), "weights/m.gguf", spec_dir.path()).unwrap();
    assert_eq!(found, Located::Path(spec_dir.path().join("weights/m.gguf")));

    let folder = spec_dir.path().join("hf-model");
    write(&folder.join("config.json"), b"{}");
    write(&folder.join("model.safetensors"), &safetensors());
    assert_eq!(
        locate_in(home.path(), "hf-model", spec_dir.path()).unwrap(),
        Located::Path(folder)
    );
}

#[test]
fn files_that_are_not_models_name_the_path_and_why() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("fake.gguf", b"PK\x03\x04", "GGUF magic"),
        ("short.safetensors", b"\x01", "safetensors header"),
        ("notes.txt", b"hello", "expected a .gguf file"),
        (
            "lonely.safetensors",
            &safetensors(),
            "no config.json beside it",
        ),
    ];
    for (name, bytes, reason) in cases {
        write(&dir.path().join(name), bytes);
        let err = locate_in(home.path(), name, dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::NotAModel { .. }), "{name}: {message}");
        assert!(
            message.contains(name) && message.contains(reason),
            "{message}"
        );
    }
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let err = locate_in(home.path(), "empty", dir.path()).unwrap_err();
    assert!(err.to_string().contains("no config.json"), "{err}");

    let missing = locate_in(home.path(), "models/none.gguf", dir.path()).unwrap_err();
    assert!(
        matches!(&missing, Error::NotFound { path } if path == &dir.path().join("models/none.gguf")),
        "{missing}"
    );
}

#[test]
fn known_names_are_cached_or_to_be_fetched_and_unknown_names_fail() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let known = models::find("smollm2-135m-instruct").unwrap();
    assert_eq!(
        locate_in(home.path(), known.name, dir.path()).unwrap(),
        Located::NotCached {
            approx_bytes: Some(known.approx_bytes)
        }
    );
    assert_eq!(
        locate_in(home.path(), "hf:o/r", dir.path()).unwrap(),
        Located::NotCached { approx_bytes: None }
    );
    write(&known.path_in(home.path()), b"GGUF");
    assert_eq!(
        locate_in(home.path(), known.name, dir.path()).unwrap(),
        Located::Cached {
            path: known.path_in(home.path()),
            known: Some(known)
        }
    );
    let err = locate_in(home.path(), "smollm2-135m-instrukt", dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err}");
}
