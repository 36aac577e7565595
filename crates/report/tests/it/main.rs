//! Integration tests of the `report` crate through its public API, on runs constructed as the
//! store returns them. One test binary for the crate; each feature is a module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod curves;
mod decide;
mod label_issues;
mod review;
