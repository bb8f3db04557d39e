//! Why a manifest could not be loaded.

use std::fmt;
use std::path::PathBuf;

/// A manifest that could not be loaded. Every message ends with what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No manifest file exists: nothing was provisioned yet.
    NotProvisioned {
        /// Where the manifest was looked for.
        path: PathBuf,
    },
    /// The manifest exists but could not be read.
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The manifest has a schema version this crate does not read.
    Schema {
        /// The manifest's path.
        path: PathBuf,
        /// The schema version found in the file.
        found: u64,
    },
    /// The manifest parsed but breaks a rule of the schema.
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The rule that is broken.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fix = crate::PROVISION_COMMAND;
        match self {
            Error::NotProvisioned { path } => write!(
                f,
                "no Python interpreter manifest at {}: run {fix} (or point {} at one)",
                path.display(),
                crate::MANIFEST_ENV
            ),
            Error::Read { path, source } => write!(
                f,
                "cannot read the interpreter manifest {}: {source}; re-run {fix}",
                path.display()
            ),
            Error::Parse { path, source } => write!(
                f,
                "{} is not a valid interpreter manifest: {source}; re-run {fix}",
                path.display()
            ),
            Error::Schema { path, found } => write!(
                f,
                "{} has manifest schema {found}, this testkit reads schema {}; re-run {fix}",
                path.display(),
                crate::SCHEMA
            ),
            Error::Invalid { path, message } => write!(
                f,
                "{} is not a valid interpreter manifest: {message}; re-run {fix}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::NotProvisioned { .. } | Error::Schema { .. } | Error::Invalid { .. } => None,
        }
    }
}
