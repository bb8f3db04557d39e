//! Test support for Peeka: the real CPython interpreters that integration
//! tests attach to.
//!
//! `scripts/provision-pythons.sh` finds CPython 3.8 to 3.13 on the machine,
//! provisions 3.14 and 3.15 in a Debian sid chroot, runs each one to check
//! what it is, and writes a JSON manifest. This crate reads that manifest so
//! that tests of `peeka-attach`, `peeka-core` and `peeka-cli` can start real
//! targets without knowing where they live.
//!
//! The web servers some tests attach to (waitress, gunicorn and flask, which
//! `scripts/provision-servers.sh` installs per interpreter) are found through
//! a second manifest, [`ServersManifest`]; a gunicorn master and the workers
//! it forks are cleaned up by [`ForkingServer`]; [`procfs`] reads what those
//! tests watch in `/proc`.
//!
//! # Skip or fail
//!
//! A test that needs an interpreter the manifest does not list (or that finds
//! no manifest at all) prints a loud banner and skips:
//!
//! ```text
//! *** SKIPPED: Python 3.15 is not provisioned: <reason>; run scripts/provision-pythons.sh (test <name>)
//! ```
//!
//! With `CI=true` or `PEEKA_REQUIRE_ALL_PYTHONS=1` in the environment the same
//! situation panics instead, so CI can never pass by skipping.
//!
//! # The manifest (schema 1)
//!
//! Read from `$PEEKA_PYTHONS_MANIFEST`, or `<workspace>/target/peeka-pythons.json`:
//!
//! ```text
//! {"schema": 1,
//!  "generated_at": "2025-01-01T00:00:00Z",       UTC
//!  "interpreters": [
//!    {"id": "3.14",                   unique; "3.X" is the preferred build of
//!                                     a minor, "3.X-debian" an extra one
//!     "minor": "3.14",
//!     "version": "3.14.10",           platform.python_version()
//!     "implementation": "CPython",
//!     "argv": ["/usr/sbin/chroot", "<DIR>", "/usr/bin/python3.14"],
//!                                     launch prefix; append interpreter args
//!     "executable": "/usr/bin/python3.14",   sys.executable, target's view
//!     "root": "<DIR>",                the target's root on the host, or "/"
//!     "layout": "static",             "shared": symbols in a mapped libpython,
//!                                     "static": symbols in the executable
//!     "libpython": null,              mapped libpython path (target's view)
//!     "py_enable_shared": true,       sysconfig Py_ENABLE_SHARED (optional;
//!                                     true for Debian's static builds too)
//!     "arch": "x86_64"}               platform.machine()
//!  ],
//!  "missing": [{"minor": "3.15", "reason": "..."}]}
//! ```
//!
//! Paths marked "target's view" are as the interpreter sees them; map them to
//! the host with [`Interpreter::host_path`].
//!
//! # Example
//!
//! ```
//! use peeka_testkit::{Layout, Manifest};
//! use std::path::Path;
//!
//! let manifest = Manifest::parse(
//!     r#"{"schema": 1, "generated_at": "2025-01-01T00:00:00Z", "missing": [],
//!         "interpreters": [{"id": "3.14", "minor": "3.14", "version": "3.14.10",
//!           "implementation": "CPython",
//!           "argv": ["/usr/sbin/chroot", "/srv/sid", "/usr/bin/python3.14"],
//!           "executable": "/usr/bin/python3.14", "root": "/srv/sid",
//!           "layout": "static", "libpython": null, "arch": "x86_64"}]}"#,
//!     Path::new("example.json"),
//! )?;
//! let python = manifest.get("3.14").expect("listed above");
//! assert_eq!(python.layout, Layout::Static);
//! assert_eq!(
//!     python.host_path(&python.executable),
//!     Path::new("/srv/sid/usr/bin/python3.14")
//! );
//! assert_eq!(python.command().get_program(), "/usr/sbin/chroot");
//! # Ok::<(), peeka_testkit::Error>(())
//! ```
//!
//! In an integration test, against the real manifest:
//!
//! ```no_run
//! use peeka_testkit::Manifest;
//!
//! let Some(manifest) = Manifest::load_or_skip() else { return };
//! manifest.for_each_interpreter(|python| {
//!     let status = python.command().args(["-c", "pass"]).status().unwrap();
//!     assert!(status.success(), "{} failed to start", python.id);
//! });
//! if let Some(python) = manifest.require("3.15") {
//!     // ... attach to a 3.15 target ...
//!     # let _ = python;
//! }
//! ```
#![deny(missing_docs)]

mod error;
mod forking_server;
mod interpreter;
mod manifest;
mod policy;
pub mod procfs;
mod servers;
mod target_process;

pub use error::Error;
pub use forking_server::ForkingServer;
pub use interpreter::{Interpreter, Layout};
pub use manifest::{Manifest, Missing, MANIFEST_ENV, SCHEMA};
pub use policy::{require_all, skip_test, REQUIRE_ALL_ENV};
pub use servers::{
    get_hello, MissingServers, ServerSite, ServersError, ServersManifest,
    PROVISION_SERVERS_COMMAND, SERVERS_MANIFEST_ENV,
};
pub use target_process::{all_threads_sleep, TargetProcess, READY_TIMEOUT};

/// Every CPython minor version Peeka supports, oldest first.
pub const SUPPORTED_MINORS: [&str; 8] =
    ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];

/// The command that writes the manifest, as error messages and banners name it.
pub const PROVISION_COMMAND: &str = "scripts/provision-pythons.sh";
