//! Small file helpers shared by the adapter writer and the checkpoints: every file is written
//! to a temporary name in the same directory and renamed into place, so a reader (or a resume
//! after a crash) sees either the old file or the complete new one, never half of one.
//!
//! Not here: what goes into the files (`adapter.rs`, `checkpoint.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` with `.tmp` appended to its file name.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

pub(crate) fn create_dir_all(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))
}

/// Renames `tmp` to `path`, removing `tmp` when that fails.
fn commit(tmp: &Path, path: &Path) -> Result<(), Error> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        io_error(path, e)
    })
}

/// Writes `tensors` as safetensors (f32 as stored, every other float as f32) with `metadata`
/// in the header, atomically.
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), Error> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        owned.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
    let tmp = temp_path(path);
    safetensors::tensor::serialize_to_file(views, Some(metadata), &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, std::io::Error::other(e.to_string()))
    })?;
    commit(&tmp, path)
}

/// Reads a safetensors file onto `device`.
pub(crate) fn read_safetensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, Error> {
    if !path.is_file() {
        return Err(io_error(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Ok(candle_core::safetensors::load(path, device)?)
}

/// Writes `value` as pretty JSON, atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    write_bytes(path, text.as_bytes())
}

/// Writes `bytes` atomically.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| io_error(&tmp, e))?;
    commit(&tmp, path)
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces directory `dest` by `staged` (a complete sibling directory): the old one is moved
/// aside first, so a crash in between leaves one of the two intact.
pub(crate) fn replace_dir(staged: &Path, dest: &Path) -> Result<(), Error> {
    let old = dest.with_file_name(format!(
        "{}.old",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, e))?;
    }
    if dest.exists() {
        std::fs::rename(dest, &old).map_err(|e| io_error(dest, e))?;
    }
    std::fs::rename(staged, dest).map_err(|e| io_error(dest, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, e))?;
    }
    Ok(())
}
