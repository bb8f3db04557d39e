//! The real web servers that tests and benches attach to: the manifest
//! written by `scripts/provision-servers.sh`, which says where waitress,
//! gunicorn and flask are installed for each interpreter, and a client of
//! the test app those servers serve.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::manifest_path;
use crate::Interpreter;

/// The environment variable that overrides the servers manifest's path.
pub const SERVERS_MANIFEST_ENV: &str = "PEEKA_SERVERS_MANIFEST";

/// The command that writes the servers manifest, as error messages name it.
pub const PROVISION_SERVERS_COMMAND: &str = "scripts/provision-servers.sh";

/// Where the server packages of one interpreter are installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerSite {
    /// The interpreter's id in the interpreter manifest (`"3.14"`).
    pub id: String,
    /// The interpreter version the packages were installed for.
    pub version: String,
    /// The packages' directory, as the host sees it.
    pub dir: PathBuf,
    /// The same directory as the interpreter sees it: what goes on a
    /// target's `PYTHONPATH`.
    pub target_dir: String,
    /// The version of every package installed there, dependencies included
    /// (`"flask"` → `"3.1.3"`).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}

/// An interpreter the script could not install the servers for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MissingServers {
    /// The interpreter's id.
    pub id: String,
    /// What went wrong, in the script's words.
    pub reason: String,
}

/// The manifest of `scripts/provision-servers.sh`.
///
/// The script installs the packages per interpreter into a directory of
/// their own (never the interpreter's site-packages), which a target gets on
/// `PYTHONPATH`, and writes this manifest (schema 1) to
/// `$PEEKA_SERVERS_MANIFEST`, or `<workspace>/target/peeka-servers.json`:
///
/// ```text
/// {"schema": 1,
///  "generated_at": "2025-01-01T00:00:00Z",
///  "packages": ["flask", "waitress", "gunicorn"],
///  "sites": [
///    {"id": "3.14",                            an interpreter id of
///                                              peeka-pythons.json
///     "version": "3.14.2",                     the interpreter's version
///     "dir": "<root>/opt/peeka-servers/3.14",  on the host
///     "target_dir": "/opt/peeka-servers/3.14", as the interpreter sees it
///     "versions": {"flask": "3.1.3", ...},
///     ...}
///  ],
///  "missing": [{"id": "3.15", "reason": "..."}]}
/// ```
///
/// # Example
///
/// ```no_run
/// use peeka_testkit::{skip_test, Manifest, ServersManifest};
///
/// let Some(manifest) = Manifest::load_or_skip() else { return };
/// let servers = match ServersManifest::load() {
///     Ok(servers) => servers,
///     Err(error) => return skip_test(&error.to_string()),
/// };
/// manifest.for_each_interpreter(|python| {
///     match servers.site(python, &["flask", "waitress"]) {
///         // Start a target with ("PYTHONPATH", &site.target_dir).
///         Ok(site) => { let _ = &site.target_dir; }
///         Err(error) => skip_test(&error.to_string()),
///     }
/// });
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct ServersManifest {
    /// One entry per interpreter that got its servers.
    pub sites: Vec<ServerSite>,
    /// The interpreters that did not.
    #[serde(default)]
    pub missing: Vec<MissingServers>,
    /// Where the manifest was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Why the servers manifest, or an interpreter's site in it, cannot be
/// used. Every message ends with what to do; those about a site name the
/// interpreter.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServersError {
    /// The manifest cannot be read: most often it does not exist, nothing
    /// was provisioned yet (`source` is then a `NotFound` error).
    Read {
        /// Where the manifest was looked for.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// The manifest lists no site for the interpreter.
    NoSite {
        /// The interpreter's id.
        id: String,
        /// The packages that were asked for.
        packages: Vec<String>,
        /// The script's reason, or that the manifest does not list it.
        reason: String,
    },
    /// The site was installed for another version of the interpreter (it
    /// was upgraded since).
    OtherVersion {
        /// The interpreter's id.
        id: String,
        /// The version the site was installed for.
        installed: String,
        /// The interpreter's version now.
        now: String,
    },
    /// A package asked for is not in the site's directory.
    PackageMissing {
        /// The interpreter's id.
        id: String,
        /// The package (its `__init__.py` is missing).
        package: String,
        /// The site's directory, as the host sees it.
        dir: PathBuf,
        /// The manifest that lists the site.
        manifest: PathBuf,
    },
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl fmt::Display for ServersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fix = PROVISION_SERVERS_COMMAND;
        match self {
            ServersError::Read { path, source } if source.kind() == ErrorKind::NotFound => write!(
                f,
                "no servers manifest at {}: run {fix} (or point {SERVERS_MANIFEST_ENV} at one)",
                path.display()
            ),
            ServersError::Read { path, source } => write!(
                f,
                "cannot read the servers manifest {}: {source}; re-run {fix}",
                path.display()
            ),
            ServersError::Parse { path, source } => write!(
                f,
                "{} is not a valid servers manifest: {source}; re-run {fix}",
                path.display()
            ),
            ServersError::NoSite {
                id,
                packages,
                reason,
            } => write!(
                f,
                "Python {id}: {} {} not provisioned: {reason}; run {fix}",
                and_list(packages),
                if packages.len() == 1 { "is" } else { "are" }
            ),
            ServersError::OtherVersion { id, installed, now } => write!(
                f,
                "Python {id}: the servers were installed for Python {installed}, the \
                 interpreter is now {now}; run {fix}"
            ),
            ServersError::PackageMissing {
                id,
                package,
                dir,
                manifest,
            } => write!(
                f,
                "Python {id}: {package} is missing from {} (listed in {}); run {fix}",
                dir.display(),
                manifest.display()
            ),
        }
    }
}

impl std::error::Error for ServersError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServersError::Read { source, .. } => Some(source),
            ServersError::Parse { source, .. } => Some(source),
            ServersError::NoSite { .. }
            | ServersError::OtherVersion { .. }
            | ServersError::PackageMissing { .. } => None,
        }
    }
}

impl ServersManifest {
    /// Where [`load`](Self::load) reads the manifest: `$PEEKA_SERVERS_MANIFEST`
    /// if set, else `<workspace root>/target/peeka-servers.json`.
    pub fn default_path() -> PathBuf {
        manifest_path(SERVERS_MANIFEST_ENV, "peeka-servers.json")
    }

    /// Reads the manifest from [`default_path`](Self::default_path).
    ///
    /// # Errors
    ///
    /// As [`from_path`](Self::from_path).
    pub fn load() -> Result<Self, ServersError> {
        Self::from_path(&Self::default_path())
    }

    /// Reads the manifest at `path`.
    ///
    /// # Errors
    ///
    /// [`ServersError::Read`] if the file does not exist or cannot be read,
    /// [`ServersError::Parse`] if it is not a manifest.
    pub fn from_path(path: &Path) -> Result<Self, ServersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(source) => Err(ServersError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses manifest text; `path` only names it in errors.
    ///
    /// # Errors
    ///
    /// [`ServersError::Parse`] for malformed JSON or a missing field.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ServersError> {
        let mut manifest: Self =
            serde_json::from_str(text).map_err(|source| ServersError::Parse {
                path: path.to_owned(),
                source,
            })?;
        manifest.path = path.to_owned();
        Ok(manifest)
    }

    /// [`load`](Self::load), then [`site`](Self::site): for a caller that
    /// wants one interpreter's site, or why there is none, in one value.
    ///
    /// # Errors
    ///
    /// Any error of [`load`](Self::load) or [`site`](Self::site).
    pub fn load_site(python: &Interpreter, packages: &[&str]) -> Result<ServerSite, ServersError> {
        Self::load()?.site(python, packages).cloned()
    }

    /// The site of `python`, checked: installed for its current version,
    /// with every package of `packages` (`"flask"`, `"waitress"`,
    /// `"gunicorn"`: the names they are imported by) present.
    ///
    /// # Errors
    ///
    /// [`ServersError::NoSite`] when the manifest lists no site for it (with
    /// the script's reason when it gave one), [`ServersError::OtherVersion`]
    /// when the interpreter changed since, [`ServersError::PackageMissing`]
    /// for the first package missing from the directory.
    pub fn site(
        &self,
        python: &Interpreter,
        packages: &[&str],
    ) -> Result<&ServerSite, ServersError> {
        let id = &python.id;
        let Some(site) = self.sites.iter().find(|site| site.id == *id) else {
            let reason = self
                .missing
                .iter()
                .find(|missing| missing.id == *id)
                .map_or_else(
                    || format!("{} does not list it", self.path.display()),
                    |missing| missing.reason.clone(),
                );
            return Err(ServersError::NoSite {
                id: id.clone(),
                packages: packages.iter().map(|&p| p.to_owned()).collect(),
                reason,
            });
        };
        if site.version != python.version {
            return Err(ServersError::OtherVersion {
                id: id.clone(),
                installed: site.version.clone(),
                now: python.version.clone(),
            });
        }
        if let Some(package) = packages
            .iter()
            .find(|package| !site.dir.join(package).join("__init__.py").is_file())
        {
            return Err(ServersError::PackageMissing {
                id: id.clone(),
                package: (*package).to_owned(),
                dir: site.dir.clone(),
                manifest: self.path.clone(),
            });
        }
        Ok(site)
    }
}

/// `GET /hello?name=NAME` on `127.0.0.1:port`, over a plain socket with
/// HTTP/1.0, connecting, sending and reading each bounded by `limit`: the
/// route of the Flask app of `peeka-cli/tests/targets/idle_server.py`, which
/// answers `hello NAME from Python X.Y.Z pid PID` (the pid of the process
/// that served it). Returns the body of a 200 answer, or what went wrong
/// (for a failure message or a table cell). `name` goes into the URL as it
/// is: keep it to letters, digits, `-` and `_`.
///
/// # Errors
///
/// A message when the connection, the request or the answer fails, or the
/// answer is not a 200.
pub fn get_hello(port: u16, name: &str, limit: Duration) -> Result<String, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, limit)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(limit))
        .and_then(|()| stream.set_write_timeout(Some(limit)))
        .map_err(|e| format!("set the socket's timeouts: {e}"))?;
    let request = format!(
        "GET /hello?name={name} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send the request: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read the answer: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {answer:?}"))?;
    let status = head.lines().next().unwrap_or("");
    if !(status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")) {
        return Err(format!("status line {status:?}; answer: {answer:?}"));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;
    use std::net::TcpListener;

    const SERVERS: &str = r#"{
      "schema": 1, "generated_at": "2025-01-01T00:00:00Z",
      "packages": ["flask", "waitress", "gunicorn"],
      "sites": [
        {"id": "3.11", "version": "3.11.7", "dir": "DIR", "target_dir": "/opt/s/3.11",
         "installer": "own pip", "markupsafe": "speedups",
         "versions": {"flask": "3.1.3", "gunicorn": "23.0.0"}},
        {"id": "3.12", "version": "3.12.1", "dir": "DIR", "target_dir": "/opt/s/3.12"}
      ],
      "missing": [{"id": "3.15", "reason": "no wheel for markupsafe"}]
    }"#;

    fn python(id: &str, version: &str) -> Interpreter {
        let text = format!(
            r#"{{"schema": 1, "generated_at": "2025-01-01T00:00:00Z",
                "interpreters": [{{"id": "{id}", "minor": "3.x", "version": "{version}",
                  "implementation": "CPython", "argv": ["/usr/bin/python3"],
                  "executable": "/usr/bin/python3", "root": "/", "layout": "static",
                  "libpython": null, "arch": "x86_64"}}]}}"#
        );
        let manifest = Manifest::parse(&text, Path::new("p.json")).unwrap();
        manifest.interpreters[0].clone()
    }

    /// A manifest whose sites' directory holds `packages`.
    fn servers(name: &str, packages: &[&str]) -> (ServersManifest, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "peeka-testkit-servers-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for package in packages {
            std::fs::create_dir_all(dir.join(package)).unwrap();
            std::fs::write(dir.join(package).join("__init__.py"), "").unwrap();
        }
        let text = SERVERS.replace("DIR", dir.to_str().unwrap());
        let manifest = ServersManifest::parse(&text, Path::new("s.json")).unwrap();
        (manifest, dir)
    }

    #[test]
    fn finds_a_checked_site() {
        let (servers, dir) = servers("found", &["flask", "gunicorn"]);
        let site = servers
            .site(&python("3.11", "3.11.7"), &["flask", "gunicorn"])
            .unwrap();
        assert_eq!(site.target_dir, "/opt/s/3.11");
        assert_eq!(site.dir, dir);
        assert_eq!(site.versions["gunicorn"], "23.0.0");
        assert!(servers.sites[1].versions.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn says_why_a_site_cannot_be_used() {
        let (servers, dir) = servers("errors", &["flask"]);
        let error = servers
            .site(
                &python("3.15", "3.15.0"),
                &["flask", "waitress", "gunicorn"],
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Python 3.15: flask, waitress and gunicorn are not provisioned: no wheel for \
             markupsafe; run scripts/provision-servers.sh"
        );
        let error = servers
            .site(&python("3.9", "3.9.1"), &["gunicorn"])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Python 3.9: gunicorn is not provisioned: s.json does not list it; \
             run scripts/provision-servers.sh"
        );
        let error = servers
            .site(&python("3.11", "3.11.9"), &["flask"])
            .unwrap_err();
        assert!(matches!(error, ServersError::OtherVersion { .. }));
        assert_eq!(
            error.to_string(),
            "Python 3.11: the servers were installed for Python 3.11.7, the interpreter is \
             now 3.11.9; run scripts/provision-servers.sh"
        );
        let error = servers
            .site(&python("3.11", "3.11.7"), &["flask", "waitress"])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "Python 3.11: waitress is missing from {} (listed in s.json); \
                 run scripts/provision-servers.sh",
                dir.display()
            )
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_or_broken_manifest_names_the_fix() {
        let error =
            ServersManifest::from_path(Path::new("/nonexistent/peeka-servers.json")).unwrap_err();
        assert!(matches!(error, ServersError::Read { .. }));
        assert!(
            error.to_string().starts_with(
                "no servers manifest at /nonexistent/peeka-servers.json: \
                 run scripts/provision-servers.sh"
            ),
            "{error}"
        );
        let error = ServersManifest::parse("{", Path::new("s.json")).unwrap_err();
        assert!(matches!(error, ServersError::Parse { .. }));
        assert!(
            error
                .to_string()
                .ends_with("re-run scripts/provision-servers.sh"),
            "{error}"
        );
    }

    /// Serves one connection with `answer`, returning the request it read.
    fn serve_once(answer: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            stream.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, server)
    }

    #[test]
    fn get_hello_returns_the_body_of_a_200() {
        let (port, server) = serve_once("HTTP/1.0 200 OK\r\n\r\nhello x from Python 3 pid 7");
        let body = get_hello(port, "x", Duration::from_secs(10)).unwrap();
        assert_eq!(body, "hello x from Python 3 pid 7");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /hello?name=x HTTP/1.0\r\n"),
            "{request:?}"
        );

        let (port, server) = serve_once("HTTP/1.1 500 INTERNAL SERVER ERROR\r\n\r\noops");
        let error = get_hello(port, "x", Duration::from_secs(10)).unwrap_err();
        assert!(error.starts_with("status line \"HTTP/1.1 500"), "{error}");
        server.join().unwrap();
    }
}
