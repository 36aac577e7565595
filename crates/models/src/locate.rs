//! Where a spec's `model:` (or `base_model:`) points, checked without loading anything: a known
//! name or `hf:` id (cached now, or fetched by `run`), or a path relative to the spec's folder
//! that must hold a model in a format the local engine reads.
//!
//! The format check reads only headers: a GGUF file starts with the magic `GGUF`; a safetensors
//! file starts with the little-endian length of a JSON header that fits the file; a Hugging Face
//! folder has `config.json` beside its `*.safetensors`. Loading the weights is the engine's job.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, KnownModel, ModelRef, home, looks_like_path};

/// A `model:` value that names something usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A known name or `hf:` id whose files are in the cache.
    Cached {
        path: PathBuf,
        known: Option<&'static KnownModel>,
    },
    /// A known name or `hf:` id that `run` fetches first; `approx_bytes` for known models.
    NotCached { approx_bytes: Option<u64> },
    /// A model file or folder on disk (the value joined to the spec's folder when relative).
    Path(PathBuf),
}

/// [`locate_in`] with the default cache root.
pub fn locate(value: &str, base_dir: &Path) -> Result<Located, Error> {
    locate_in(&home(), value, base_dir)
}

/// Finds what `value` names: a path (relative to `base_dir`) that exists and holds a model, else
/// a known name or `hf:` id in the cache under `home` or still to fetch. An unknown name is
/// [`Error::UnknownModel`], a missing path [`Error::NotFound`], a file that is no model
/// [`Error::NotAModel`].
pub fn locate_in(home: &Path, value: &str, base_dir: &Path) -> Result<Located, Error> {
    let path = base_dir.join(value);
    if !value.is_empty() && std::fs::symlink_metadata(&path).is_ok() {
        check_model_files(&path)?;
        return Ok(Located::Path(path));
    }
    match ModelRef::parse(value) {
        Some(model) if model.is_cached(home) => Ok(Located::Cached {
            path: model.path_in(home),
            known: match model {
                ModelRef::Known(k) => Some(k),
                ModelRef::HuggingFace { .. } => None,
            },
        }),
        Some(ModelRef::Known(k)) => Ok(Located::NotCached {
            approx_bytes: Some(k.approx_bytes),
        }),
        Some(ModelRef::HuggingFace { .. }) => Ok(Located::NotCached { approx_bytes: None }),
        None if looks_like_path(value) => Err(Error::NotFound { path }),
        None => Err(Error::unknown(value)),
    }
}

/// Checks that `path` holds a model the local engine can read: a `.gguf` file, a
/// `.safetensors` file beside `config.json`, or a folder with `config.json` and safetensors.
pub fn check_model_files(path: &Path) -> Result<(), Error> {
    let not_a_model = |reason: String| Error::NotAModel {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| not_a_model(format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        if !path.join("config.json").is_file() {
            return Err(not_a_model("the folder has no config.json".into()));
        }
        let entries = std::fs::read_dir(path).map_err(|e| not_a_model(e.to_string()))?;
        let mut weights: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| has_extension(p, "safetensors"))
            .collect();
        weights.sort();
        let Some(first) = weights.first() else {
            return Err(not_a_model("the folder has no *.safetensors file".into()));
        };
        return check_safetensors(first).map_err(|reason| Error::NotAModel {
            path: first.clone(),
            reason,
        });
    }
    if !meta.is_file() {
        return Err(not_a_model("it is not a regular file or a folder".into()));
    }
    if has_extension(path, "gguf") {
        return check_gguf(path).map_err(not_a_model);
    }
    if has_extension(path, "safetensors") {
        check_safetensors(path).map_err(not_a_model)?;
        let beside = path.parent().map(|d| d.join("config.json"));
        if !beside.is_some_and(|c| c.is_file()) {
            return Err(not_a_model("there is no config.json beside it".into()));
        }
        return Ok(());
    }
    Err(not_a_model(
        "expected a .gguf file, a .safetensors file beside config.json, or a folder with \
         config.json and *.safetensors"
            .into(),
    ))
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_prefix(path: &Path, n: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut buf = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(buf)
}

fn check_gguf(path: &Path) -> Result<(), String> {
    if read_prefix(path, 4)? == b"GGUF" {
        Ok(())
    } else {
        Err("it does not start with the GGUF magic: not a GGUF file".into())
    }
}

fn check_safetensors(path: &Path) -> Result<(), String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let head = read_prefix(path, 9)?;
    let bad = || "its header is not a safetensors header".to_string();
    let size: [u8; 8] = head
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(bad)?;
    let header_len = u64::from_le_bytes(size);
    if header_len < 2 || header_len > len - 8 || head.get(8) != Some(&b'{') {
        return Err(bad());
    }
    Ok(())
}
