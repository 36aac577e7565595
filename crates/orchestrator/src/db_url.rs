//! What `--db` (or `ORCHESTRATOR_DB`) names: a SQLite file by path, or by a `sqlite:` URL
//! (`sqlite:PATH`, `sqlite://PATH`, `sqlite:///ABSOLUTE`). Any other URL scheme is refused with
//! the schemes this version supports, instead of being taken for a file name (a `postgres://`
//! URL used to become a folder named `postgres:`). The refusal never repeats the URL: it may
//! hold a password.

use std::path::{Path, PathBuf};

use crate::exit::bad_input;

/// The SQLite file `raw` names.
pub fn database_path(raw: &Path) -> anyhow::Result<PathBuf> {
    let Some(text) = raw.to_str() else {
        return Ok(raw.to_path_buf());
    };
    if let Some(rest) = text.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path.contains('?') || path == ":memory:" {
            return Err(bad_input(
                "--db: a sqlite: URL names a file, e.g. sqlite:results.db or \
                 sqlite:///abs/path/results.db (no query parameters, no :memory:)",
            ));
        }
        return Ok(PathBuf::from(path));
    }
    match scheme(text) {
        None => Ok(raw.to_path_buf()),
        Some(scheme) => {
            let hint = if matches!(scheme.as_str(), "postgres" | "postgresql") {
                "PostgreSQL is not supported by this version yet"
            } else {
                "that database is not supported"
            };
            Err(bad_input(format!(
                "--db: unsupported URL scheme `{scheme}` ({hint}); --db takes a SQLite file \
                 path or a `sqlite:` URL"
            )))
        }
    }
}

/// The scheme of `scheme://…` (RFC 3986 letters, digits, `+ - .`), lower-cased.
fn scheme(text: &str) -> Option<String> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_and_sqlite_urls_name_files_and_other_schemes_are_refused() {
        let path = |s: &str| database_path(Path::new(s)).map_err(|e| e.to_string());
        assert_eq!(path("runs/o.db").unwrap(), PathBuf::from("runs/o.db"));
        assert_eq!(path("sqlite:o.db").unwrap(), PathBuf::from("o.db"));
        assert_eq!(path("sqlite://o.db").unwrap(), PathBuf::from("o.db"));
        assert_eq!(
            path("sqlite:///tmp/o.db").unwrap(),
            PathBuf::from("/tmp/o.db")
        );
        assert!(path("sqlite:o.db?mode=rwc").is_err());
        let pg = path("postgres://me:s3cret@db.example/orch").unwrap_err();
        assert!(pg.contains("`postgres`") && pg.contains("sqlite:"), "{pg}");
        assert!(!pg.contains("s3cret"), "{pg}");
        assert!(path("MySQL://h/d").unwrap_err().contains("`mysql`"));
        assert_eq!(
            path("weird:name.db").unwrap(),
            PathBuf::from("weird:name.db")
        );
    }
}
