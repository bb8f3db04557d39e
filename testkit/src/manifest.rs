//! The manifest written by `scripts/provision-pythons.sh`: loading it and
//! asking it for interpreters.

use crate::policy::{require_all, skip_or_fail, stderr_banner};
use crate::{Error, Interpreter, PROVISION_COMMAND, SUPPORTED_MINORS};
use serde::Deserialize;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the manifest's path.
pub const MANIFEST_ENV: &str = "PEEKA_PYTHONS_MANIFEST";

/// The manifest schema version this crate reads.
pub const SCHEMA: u64 = 1;

/// A minor version the provisioning script could not provide, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Missing {
    /// `"3.X"`.
    pub minor: String,
    /// What went wrong, in the script's words.
    pub reason: String,
}

/// The provisioned interpreters. See the [crate documentation](crate) for the
/// file format.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The schema version ([`SCHEMA`]).
    pub schema: u64,
    /// When the script wrote the manifest (UTC, RFC 3339).
    pub generated_at: String,
    /// Every interpreter that was found and checked, in the script's order.
    pub interpreters: Vec<Interpreter>,
    /// The minors that could not be provided.
    #[serde(default)]
    pub missing: Vec<Missing>,
    /// Where the manifest was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Manifest {
    /// Where [`load`](Self::load) reads the manifest: `$PEEKA_PYTHONS_MANIFEST`
    /// if set, else `<workspace root>/target/peeka-pythons.json`.
    pub fn default_path() -> PathBuf {
        manifest_path(MANIFEST_ENV, "peeka-pythons.json")
    }

    /// Reads the manifest from [`default_path`](Self::default_path).
    ///
    /// # Errors
    ///
    /// [`Error::NotProvisioned`] when there is no manifest yet (the message
    /// says to run `scripts/provision-pythons.sh`), or any error of
    /// [`from_path`](Self::from_path).
    pub fn load() -> Result<Self, Error> {
        Self::from_path(&Self::default_path())
    }

    /// Reads the manifest at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::NotProvisioned`] if the file does not exist, [`Error::Read`]
    /// if it cannot be read, or any error of [`parse`](Self::parse).
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::NotProvisioned {
                    path: path.to_owned(),
                }
            } else {
                Error::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` only names it in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] for malformed JSON, [`Error::Schema`] for another
    /// schema version, [`Error::Invalid`] for an empty `argv` or a repeated
    /// `id`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Version {
            schema: u64,
        }
        let parse_error = |source| Error::Parse {
            path: path.to_owned(),
            source,
        };
        // Check the version first, so that a future schema is reported as
        // such rather than as whatever field it renamed.
        let Version { schema } = serde_json::from_str(text).map_err(parse_error)?;
        if schema != SCHEMA {
            return Err(Error::Schema {
                path: path.to_owned(),
                found: schema,
            });
        }
        let mut manifest: Manifest = serde_json::from_str(text).map_err(parse_error)?;
        manifest.path = path.to_owned();
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| Error::Invalid {
            path: self.path.clone(),
            message,
        };
        let mut ids = HashSet::new();
        for interpreter in &self.interpreters {
            if !ids.insert(interpreter.id.as_str()) {
                return Err(invalid(format!("id {:?} appears twice", interpreter.id)));
            }
            if interpreter.argv.is_empty() {
                return Err(invalid(format!(
                    "interpreter {:?} has an empty argv",
                    interpreter.id
                )));
            }
        }
        Ok(())
    }

    /// [`load`](Self::load), for tests: when there is no manifest yet, prints
    /// a `SKIPPED` banner and returns `None`, or panics if
    /// [`require_all`](crate::require_all) is set.
    ///
    /// # Panics
    ///
    /// If the manifest exists but is unreadable or invalid, and if it does not
    /// exist while [`require_all`](crate::require_all) is set.
    pub fn load_or_skip() -> Option<Self> {
        match Self::load() {
            Ok(manifest) => Some(manifest),
            Err(error @ Error::NotProvisioned { .. }) => {
                skip_or_fail(
                    &format!("no Python interpreters are provisioned: {error}"),
                    require_all(),
                    &mut stderr_banner(),
                );
                None
            }
            Err(error) => panic!("{error}"),
        }
    }

    /// The interpreter with this `id` (`"3.11"`, `"3.11-debian"`, ...).
    pub fn get(&self, id: &str) -> Option<&Interpreter> {
        self.interpreters
            .iter()
            .find(|interpreter| interpreter.id == id)
    }

    /// Every interpreter of a minor version (`"3.11"`), preferred build first.
    pub fn of_minor<'a>(&'a self, minor: &'a str) -> impl Iterator<Item = &'a Interpreter> + 'a {
        let preferred = self.get(minor);
        let others = self
            .interpreters
            .iter()
            .filter(move |interpreter| interpreter.minor == minor && interpreter.id != minor);
        preferred.into_iter().chain(others)
    }

    /// Why a minor version is not provided: the script's reason if it
    /// recorded one.
    pub fn missing_reason(&self, minor: &str) -> String {
        self.missing
            .iter()
            .find(|missing| missing.minor == minor)
            .map_or_else(
                || format!("{} does not list it", self.path.display()),
                |missing| missing.reason.clone(),
            )
    }

    /// The preferred interpreter of a minor version (`"3.15"`), for a test
    /// that needs it. When it is absent this prints a banner such as
    /// `SKIPPED: Python 3.15 is not provisioned: <reason>; run
    /// scripts/provision-pythons.sh` and returns `None`: the test should then
    /// return early.
    ///
    /// # Panics
    ///
    /// When the interpreter is absent and [`require_all`](crate::require_all)
    /// is set (`CI=true` or `PEEKA_REQUIRE_ALL_PYTHONS=1`).
    pub fn require(&self, minor: &str) -> Option<&Interpreter> {
        self.require_with(minor, require_all(), &mut stderr_banner())
    }

    fn require_with(
        &self,
        minor: &str,
        strict: bool,
        banner: &mut dyn Write,
    ) -> Option<&Interpreter> {
        let found = self.get(minor);
        if found.is_none() {
            skip_or_fail(
                &format!(
                    "Python {minor} is not provisioned: {}; run {PROVISION_COMMAND}",
                    self.missing_reason(minor)
                ),
                strict,
                banner,
            );
        }
        found
    }

    /// Runs `test` on every interpreter of the manifest (extra builds such as
    /// `"3.11-debian"` included), after reporting each supported minor that
    /// has no interpreter as [`require`](Self::require) does.
    ///
    /// For quicker runs while developing, `PEEKA_ONLY=3.11,3.14` limits the
    /// run to those interpreter ids; it is refused under
    /// [`require_all`](crate::require_all) (CI runs everything).
    ///
    /// # Panics
    ///
    /// When a supported minor is absent and
    /// [`require_all`](crate::require_all) is set; when `PEEKA_ONLY` is set
    /// under it; and whenever `test` panics.
    pub fn for_each_interpreter(&self, test: impl FnMut(&Interpreter)) {
        self.for_each_interpreter_with(require_all(), &mut stderr_banner(), test);
    }

    fn for_each_interpreter_with(
        &self,
        strict: bool,
        banner: &mut dyn Write,
        test: impl FnMut(&Interpreter),
    ) {
        for minor in SUPPORTED_MINORS {
            let _ = self.require_with(minor, strict, banner);
        }
        let only = only_filter();
        self.interpreters
            .iter()
            .filter(|python| only.as_ref().is_none_or(|ids| ids.contains(&python.id)))
            .for_each(test);
    }
}

/// A manifest's path: `$ENV` if it is set and not empty, else
/// `<workspace root>/target/<file_name>`.
pub(crate) fn manifest_path(env: &str, file_name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.parent().unwrap_or(crate_dir);
    workspace.join("target").join(file_name)
}

/// The interpreter ids of `PEEKA_ONLY`, if set.
fn only_filter() -> Option<Vec<String>> {
    let only = std::env::var("PEEKA_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    assert!(
        !require_all(),
        "PEEKA_ONLY={only} is for development runs; unset it (CI and PEEKA_REQUIRE_ALL_PYTHONS run every interpreter)"
    );
    Some(only.split(',').map(|id| id.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    const TWO_OF_EIGHT: &str = r#"{
      "schema": 1, "generated_at": "2025-01-01T00:00:00Z",
      "interpreters": [
        {"id": "3.11", "minor": "3.11", "version": "3.11.7", "implementation": "CPython",
         "argv": ["/opt/py/bin/python3.11"], "executable": "/opt/py/bin/python3.11", "root": "/",
         "layout": "shared", "libpython": "/opt/py/lib/libpython3.11.so.1.0",
         "py_enable_shared": true, "arch": "x86_64"},
        {"id": "3.11-debian", "minor": "3.11", "version": "3.11.2", "implementation": "CPython",
         "argv": ["/usr/bin/python3.11"], "executable": "/usr/bin/python3.11", "root": "/",
         "layout": "static", "libpython": null, "arch": "x86_64"}
      ],
      "missing": [{"minor": "3.15", "reason": "debootstrap failed"}]
    }"#;

    fn manifest() -> Manifest {
        Manifest::parse(TWO_OF_EIGHT, Path::new("m.json")).unwrap()
    }

    #[test]
    fn parses_the_schema() {
        let manifest = manifest();
        assert_eq!(manifest.path, Path::new("m.json"));
        let shared = manifest.get("3.11").unwrap();
        assert_eq!(shared.layout, Layout::Shared);
        assert!(shared.py_enable_shared);
        let debian = manifest.get("3.11-debian").unwrap();
        assert_eq!(debian.libpython, None);
        assert!(!debian.py_enable_shared, "absent field defaults to false");
        let ids: Vec<_> = manifest.of_minor("3.11").map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["3.11", "3.11-debian"]);
    }

    #[test]
    fn explains_why_a_minor_is_missing() {
        let manifest = manifest();
        assert_eq!(manifest.missing_reason("3.15"), "debootstrap failed");
        assert_eq!(manifest.missing_reason("3.9"), "m.json does not list it");
        let mut banner = Vec::new();
        assert!(manifest.require_with("3.9", false, &mut banner).is_none());
        let banner = String::from_utf8(banner).unwrap();
        assert!(
            banner.contains(
                "SKIPPED: Python 3.9 is not provisioned: m.json does not list it; \
                 run scripts/provision-pythons.sh"
            ),
            "{banner}"
        );
        assert_eq!(
            manifest
                .require_with("3.11", true, &mut Vec::new())
                .unwrap()
                .version,
            "3.11.7"
        );
    }

    #[test]
    #[should_panic(
        expected = "Python 3.15 is not provisioned: debootstrap failed; run scripts/provision-pythons.sh"
    )]
    fn require_fails_in_strict_mode() {
        let _ = manifest().require_with("3.15", true, &mut Vec::new());
    }

    #[test]
    fn for_each_visits_every_entry_when_lenient() {
        let mut seen = Vec::new();
        let mut banner = Vec::new();
        manifest().for_each_interpreter_with(false, &mut banner, |i| seen.push(i.id.clone()));
        assert_eq!(seen, ["3.11", "3.11-debian"]);
        let banner = String::from_utf8(banner).unwrap();
        let skipped = banner.matches("SKIPPED: Python 3.").count();
        assert_eq!(skipped, 7, "one banner per absent minor: {banner}");
        assert!(banner.contains("Python 3.15 is not provisioned: debootstrap failed"));
    }

    #[test]
    #[should_panic(expected = "Python 3.8 is not provisioned")]
    fn for_each_fails_on_a_missing_minor_in_strict_mode() {
        manifest().for_each_interpreter_with(true, &mut Vec::new(), |_| {});
    }

    #[test]
    fn rejects_other_schemas_and_broken_entries() {
        let other = Manifest::parse(r#"{"schema": 2, "whatever": []}"#, Path::new("m.json"));
        assert!(matches!(other, Err(Error::Schema { found: 2, .. })));

        let twice = TWO_OF_EIGHT.replace("\"3.11-debian\"", "\"3.11\"");
        let error = Manifest::parse(&twice, Path::new("m.json")).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");

        let empty = TWO_OF_EIGHT.replace("[\"/usr/bin/python3.11\"]", "[]");
        let error = Manifest::parse(&empty, Path::new("m.json")).unwrap_err();
        assert!(error.to_string().contains("empty argv"), "{error}");

        let error = Manifest::parse("{", Path::new("m.json")).unwrap_err();
        assert!(matches!(error, Error::Parse { .. }));
        assert!(
            error
                .to_string()
                .ends_with("re-run scripts/provision-pythons.sh"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_names_the_fix() {
        let error = Manifest::from_path(Path::new("/nonexistent/peeka-pythons.json")).unwrap_err();
        assert!(matches!(error, Error::NotProvisioned { .. }));
        assert!(
            error
                .to_string()
                .contains("run scripts/provision-pythons.sh"),
            "{error}"
        );
    }
}
