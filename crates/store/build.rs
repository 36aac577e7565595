//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations/` directory at compile time, and stable Rust cannot tell cargo to watch it.
//! This script does nothing else.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
