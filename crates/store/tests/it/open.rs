//! Opening: creating the file and its directory, reopening, and failing with the path.

use store::{Error, Store};

use crate::{db_path, fresh};

#[tokio::test]
async fn open_creates_the_file_and_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("runs.db");
    let store = Store::open(&path).await.unwrap();
    assert!(path.is_file());
    assert!(store.list_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn reopening_keeps_what_was_written_and_does_not_migrate_twice() {
    let (dir, store) = fresh().await;
    let run = store.create_run("exp", "h", "fp", "{}").await.unwrap();
    store.close().await;
    drop(store);

    let store = Store::open(&db_path(&dir)).await.unwrap();
    let runs = store.list_runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, run);
    // A second open of the same file while the first is still open works too.
    let other = Store::open(&db_path(&dir)).await.unwrap();
    assert_eq!(other.list_runs().await.unwrap(), runs);
}

#[tokio::test]
async fn a_parent_that_is_a_file_is_a_create_dir_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open(&file.join("x.db")).await.unwrap_err();
    match &err {
        Error::CreateDir { path, .. } => assert_eq!(path, &file),
        other => panic!("expected CreateDir, got {other:?}"),
    }
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn a_path_that_is_a_directory_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).await.unwrap_err();
    match &err {
        Error::Open { path, .. } => assert_eq!(path, dir.path()),
        other => panic!("expected Open, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::write(
        &path,
        "this is not sqlite, just some text that is long enough ".repeat(100),
    )
    .unwrap();
    let err = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(err, Error::Open { .. } | Error::Migrate { .. }),
        "{err:?}"
    );
}

/// Two processes opening a new database at once both migrate it; both opens succeed (the
/// migrator has no lock on SQLite, so the loser of the race retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opening_a_new_database_at_once_both_succeed() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        let (a, b) = tokio::join!(Store::open(&path), Store::open(&path));
        a.unwrap();
        b.unwrap();
    }
}

/// A SQLite file of another program, with one table of its own.
async fn foreign_database(path: &std::path::Path) {
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn another_programs_database_is_refused_and_left_byte_for_byte_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    foreign_database(&path).await;
    let before = std::fs::read(&path).unwrap();
    for err in [
        Store::open(&path).await.unwrap_err(),
        Store::open_read_only(&path).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotOurs { .. }), "{err:?}");
        assert!(err.is_user_fixable());
        assert!(
            err.to_string().contains("not an orchestrator database"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no -wal or -shm left behind: {names:?}");
}

#[tokio::test]
async fn a_database_of_a_newer_version_names_both_schemas_and_is_not_touched() {
    let (dir, store) = fresh().await;
    store.close().await;
    let path = db_path(&dir);
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let known = store::known_schema();
    for err in [
        Store::open(&path).await.unwrap_err(),
        Store::open_read_only(&path).await.unwrap_err(),
    ] {
        assert!(
            err.to_string().contains(&format!(
                "created by a newer orchestrator (schema 9999, this one knows {known})"
            )),
            "{err}"
        );
        assert!(err.is_user_fixable());
    }
}

#[tokio::test]
async fn reading_changes_nothing_in_the_file_and_refuses_writes() {
    let (dir, store) = fresh().await;
    let run = store.create_run("exp", "h", "fp", "{}").await.unwrap();
    store.close().await;
    let path = db_path(&dir);
    let before = std::fs::read(&path).unwrap();
    let reader = Store::open_read_only(&path).await.unwrap();
    assert_eq!(reader.list_runs().await.unwrap()[0].id, run);
    assert!(reader.results(run).await.unwrap().calls.is_empty());
    reader
        .create_run("exp", "h2", "fp", "{}")
        .await
        .unwrap_err();
    reader.close().await;
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn reading_a_missing_file_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let err = Store::open_read_only(&path).await.unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn a_text_file_is_a_mistake_the_user_can_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::write(
        &path,
        "not sqlite at all, but long enough to have a header ".repeat(20),
    )
    .unwrap();
    for err in [
        Store::open(&path).await.unwrap_err(),
        Store::open_read_only(&path).await.unwrap_err(),
    ] {
        assert!(err.is_user_fixable(), "{err:?}");
    }
}
