//! One provisioned interpreter: how to launch it and where its files are.

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Where an interpreter's CPython symbols (`_PyRuntime`, ...) live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// In the executable itself (Debian's builds).
    Static,
    /// In a mapped `libpython3.X.so` (pyenv's `--enable-shared` builds).
    Shared,
}

/// One interpreter of the manifest, as `scripts/provision-pythons.sh` found it
/// by running it.
///
/// Paths are as the interpreter sees them, inside [`root`](Self::root); use
/// [`host_path`](Self::host_path) to open them from the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Interpreter {
    /// Unique name: `"3.X"` for the preferred build of a minor, `"3.X-debian"`
    /// for an additional one.
    pub id: String,
    /// `"3.X"`.
    pub minor: String,
    /// The full version, as `platform.python_version()` reports it.
    pub version: String,
    /// `platform.python_implementation()`: always `"CPython"` today.
    pub implementation: String,
    /// The program and leading arguments that start the interpreter
    /// (for example `chroot <root> /usr/bin/python3.14`); never empty.
    pub argv: Vec<String>,
    /// `sys.executable`, as the interpreter sees it.
    pub executable: PathBuf,
    /// The interpreter's filesystem root on the host: `/` unless it runs in a
    /// chroot.
    pub root: PathBuf,
    /// Where the CPython symbols live.
    pub layout: Layout,
    /// The `libpython3.X.so` the interpreter maps, as it sees it; `None` for
    /// a [`Layout::Static`] build.
    pub libpython: Option<PathBuf>,
    /// sysconfig's `Py_ENABLE_SHARED`. Debian's static-layout builds say
    /// `true` as well, so never infer the layout from it.
    #[serde(default)]
    pub py_enable_shared: bool,
    /// `platform.machine()`, for example `"x86_64"`.
    pub arch: String,
}

impl Interpreter {
    /// A command that starts this interpreter; append its arguments
    /// (`-c CODE`, a script path *as the interpreter sees it*, ...).
    pub fn command(&self) -> Command {
        let mut argv = self.argv.iter();
        // Manifest::parse rejects an empty argv; an empty program would only
        // make the spawn fail with a clear "not found".
        let mut command = Command::new(argv.next().map_or("", String::as_str));
        command.args(argv);
        command
    }

    /// Whether the interpreter runs under another root than the host's (a
    /// chroot), so that its paths differ from the host's.
    pub fn is_chrooted(&self) -> bool {
        self.root != Path::new("/")
    }

    /// Maps a path as the interpreter sees it to the same file seen from the
    /// host: `/tmp/x.py` becomes `<root>/tmp/x.py`. Relative paths are taken
    /// relative to the interpreter's root. The mapping is lexical: symbolic
    /// links inside the root are not resolved.
    pub fn host_path(&self, inside: &Path) -> PathBuf {
        let mut host = self.root.clone();
        for component in inside.components() {
            match component {
                Component::Normal(part) => host.push(part),
                Component::ParentDir => host.push(".."),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        host
    }

    /// The file that holds the CPython symbols, as the interpreter sees it:
    /// the libpython of a shared build, else the executable.
    pub fn symbol_file(&self) -> &Path {
        self.libpython.as_deref().unwrap_or(&self.executable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter(root: &str, argv: &[&str]) -> Interpreter {
        Interpreter {
            id: "3.14".into(),
            minor: "3.14".into(),
            version: "3.14.10".into(),
            implementation: "CPython".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            executable: "/usr/bin/python3.14".into(),
            root: root.into(),
            layout: Layout::Static,
            libpython: None,
            py_enable_shared: true,
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn host_path_prefixes_the_root() {
        let chrooted = interpreter("/cache/sid-root", &["/usr/sbin/chroot"]);
        assert!(chrooted.is_chrooted());
        assert_eq!(
            chrooted.host_path(Path::new("/tmp/x.py")),
            Path::new("/cache/sid-root/tmp/x.py")
        );
        assert_eq!(
            chrooted.host_path(Path::new("tmp/x.py")),
            Path::new("/cache/sid-root/tmp/x.py")
        );
        assert_eq!(
            chrooted.host_path(Path::new("/")),
            Path::new("/cache/sid-root")
        );
    }

    #[test]
    fn host_path_is_identity_on_the_host_root() {
        let host = interpreter("/", &["/usr/bin/python3.11"]);
        assert!(!host.is_chrooted());
        assert_eq!(
            host.host_path(Path::new("/usr/lib/libpython3.11.so.1.0")),
            Path::new("/usr/lib/libpython3.11.so.1.0")
        );
    }

    #[test]
    fn command_applies_the_argv_prefix() {
        let chrooted = interpreter("/r", &["/usr/sbin/chroot", "/r", "/usr/bin/python3.14"]);
        let mut command = chrooted.command();
        command.args(["-c", "pass"]);
        assert_eq!(command.get_program(), "/usr/sbin/chroot");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["/r", "/usr/bin/python3.14", "-c", "pass"]);
    }

    #[test]
    fn symbol_file_follows_the_layout() {
        let mut python = interpreter("/", &["python"]);
        assert_eq!(python.symbol_file(), Path::new("/usr/bin/python3.14"));
        python.layout = Layout::Shared;
        python.libpython = Some("/lib/libpython3.14.so.1.0".into());
        assert_eq!(python.symbol_file(), Path::new("/lib/libpython3.14.so.1.0"));
    }
}
