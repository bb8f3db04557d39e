//! Finding the CPython interpreter inside a process: which file holds it,
//! where it is loaded, and its exact version.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::elf::{ElfFile, LoadBias};
use crate::memory::RemoteMemory;
use crate::procfs::MapEntry;

/// A CPython release level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReleaseLevel {
    /// `a`
    Alpha,
    /// `b`
    Beta,
    /// `rc`
    Candidate,
    /// A final release.
    Final,
}

/// An exact CPython version, as in `PY_VERSION_HEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    /// 3
    pub major: u8,
    /// e.g. 12
    pub minor: u8,
    /// e.g. 1
    pub micro: u8,
    /// Alpha, beta, candidate or final.
    pub level: ReleaseLevel,
    /// The pre-release serial (0 for finals).
    pub serial: u8,
}

impl PythonVersion {
    /// Decodes a `PY_VERSION_HEX` value such as `0x030e0af0`.
    pub fn from_hex(hex: u64) -> Option<Self> {
        let level = match (hex >> 4) & 0xF {
            0xA => ReleaseLevel::Alpha,
            0xB => ReleaseLevel::Beta,
            0xC => ReleaseLevel::Candidate,
            0xF => ReleaseLevel::Final,
            _ => return None,
        };
        let byte = |shift: u32| u8::try_from((hex >> shift) & 0xFF).unwrap_or(0);
        let version = Self {
            major: byte(24),
            minor: byte(16),
            micro: byte(8),
            level,
            serial: u8::try_from(hex & 0xF).unwrap_or(0),
        };
        (version.major == 3 && hex >> 32 == 0).then_some(version)
    }

    /// The `PY_VERSION_HEX` encoding.
    pub fn to_hex(self) -> u64 {
        let level = match self.level {
            ReleaseLevel::Alpha => 0xA,
            ReleaseLevel::Beta => 0xB,
            ReleaseLevel::Candidate => 0xC,
            ReleaseLevel::Final => 0xF,
        };
        (u64::from(self.major) << 24)
            | (u64::from(self.minor) << 16)
            | (u64::from(self.micro) << 8)
            | (level << 4)
            | u64::from(self.serial)
    }

    /// Parses the leading version of `sys.version`, e.g. `3.13.0rc1 (main, ...`.
    pub fn parse_prefix(text: &str) -> Option<Self> {
        let token = text.split([' ', '\0']).next()?.trim_end_matches('+');
        let mut parts = token.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let micro = rest[..digits].parse().ok()?;
        let (level, serial) = match &rest[digits..] {
            "" => (ReleaseLevel::Final, 0),
            suffix => {
                let (level, serial) = if let Some(s) = suffix.strip_prefix("rc") {
                    (ReleaseLevel::Candidate, s)
                } else if let Some(s) = suffix.strip_prefix('a') {
                    (ReleaseLevel::Alpha, s)
                } else if let Some(s) = suffix.strip_prefix('b') {
                    (ReleaseLevel::Beta, s)
                } else {
                    return None;
                };
                (level, serial.parse().ok()?)
            }
        };
        (major == 3).then_some(Self {
            major,
            minor,
            micro,
            level,
            serial,
        })
    }

    /// `(major, minor)`.
    pub fn minor_version(self) -> (u8, u8) {
        (self.major, self.minor)
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        match self.level {
            ReleaseLevel::Alpha => write!(f, "a{}", self.serial),
            ReleaseLevel::Beta => write!(f, "b{}", self.serial),
            ReleaseLevel::Candidate => write!(f, "rc{}", self.serial),
            ReleaseLevel::Final => Ok(()),
        }
    }
}

/// Where the interpreter's code lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Linked into the executable (symbols in the executable).
    Static,
    /// In a shared `libpython3.X.so` the executable links against.
    Shared,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static => "static",
            Self::Shared => "shared",
        })
    }
}

/// Why a process is not a CPython we can attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCPython {
    /// PyPy (its own interpreter, no CPython C API in memory).
    PyPy,
    /// No mapped file exports the CPython runtime.
    NoInterpreter,
    /// The interpreter was found but its version could not be determined.
    UnknownVersion,
}

/// The CPython interpreter of a process.
#[derive(Debug)]
pub struct Interpreter {
    /// Exact version.
    pub version: PythonVersion,
    /// Static or shared layout.
    pub layout: Layout,
    /// The file holding the interpreter, as the target sees it.
    pub path: PathBuf,
    /// The file was deleted or replaced on disk since it was loaded.
    pub deleted: bool,
    /// The file, parsed.
    pub elf: ElfFile,
    /// Its load bias in the target.
    pub bias: LoadBias,
}

/// Symbols that only CPython's runtime defines.
const RUNTIME_SYMBOLS: [&str; 2] = ["_PyRuntime", "Py_InitializeEx"];

impl Interpreter {
    /// Finds the interpreter among the files mapped in process `pid`.
    ///
    /// # Errors
    /// [`NotCPython`] when the process runs PyPy, has no CPython runtime, or
    /// its version cannot be read.
    pub fn locate(
        pid: u32,
        exe: &Path,
        maps: &[MapEntry],
        memory: &RemoteMemory,
    ) -> Result<Self, NotCPython> {
        let mut paths: Vec<&PathBuf> = Vec::new();
        for path in maps
            .iter()
            .filter(|m| m.is_file())
            .filter_map(|m| m.path.as_ref())
        {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        if paths.iter().any(|p| file_name(p).contains("pypy")) {
            return Err(NotCPython::PyPy);
        }
        // libpython first (shared layout), then the executable (static).
        let mut candidates: Vec<(&PathBuf, Layout)> = paths
            .iter()
            .filter(|p| file_name(p).starts_with("libpython3"))
            .map(|p| (*p, Layout::Shared))
            .collect();
        candidates.extend(
            paths
                .iter()
                .filter(|p| p.as_path() == exe)
                .map(|p| (*p, Layout::Static)),
        );

        for (path, layout) in candidates {
            let mappings: Vec<&MapEntry> = maps
                .iter()
                .filter(|m| m.path.as_ref() == Some(path))
                .collect();
            let Some(first) = mappings.first() else {
                continue;
            };
            let Ok(elf) = ElfFile::open_mapped(pid, first) else {
                continue;
            };
            if !RUNTIME_SYMBOLS.iter().all(|s| elf.exports(s)) {
                continue;
            }
            let Some(bias) = elf.load_bias(&mappings) else {
                continue;
            };
            let version = read_version(&elf, bias, &mappings, memory)
                .filter(|v| name_hint_agrees(path, *v))
                .ok_or(NotCPython::UnknownVersion)?;
            return Ok(Self {
                version,
                layout,
                path: path.clone(),
                deleted: mappings.iter().any(|m| m.deleted),
                elf,
                bias,
            });
        }
        Err(NotCPython::NoInterpreter)
    }

    /// The run-time address of a symbol of the interpreter.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.elf.symbol(name).map(|a| self.bias.apply(a))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `python3.9`, `libpython3.9.so.1.0`, `libpython3.12d.so`: the minor the
/// file name announces, when it announces one.
fn minor_from_name(path: &Path) -> Option<u8> {
    let name = file_name(path);
    let rest = &name[name.find("python3.")? + "python3.".len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

fn name_hint_agrees(path: &Path, version: PythonVersion) -> bool {
    minor_from_name(path).is_none_or(|minor| minor == version.minor)
}

/// The exact version: `Py_Version` (3.11+), else the buffer `Py_GetVersion`
/// fills at start-up (found by its local symbol), else a scan of the
/// interpreter's writable data for that same text.
fn read_version(
    elf: &ElfFile,
    bias: LoadBias,
    mappings: &[&MapEntry],
    memory: &RemoteMemory,
) -> Option<PythonVersion> {
    if let Some(addr) = elf.symbol("Py_Version") {
        if let Some(v) = memory
            .read_u64(bias.apply(addr))
            .ok()
            .and_then(PythonVersion::from_hex)
        {
            return Some(v);
        }
    }
    for name in ["version.0", "version"] {
        if let Some(addr) = elf.symbol(name) {
            if let Ok(bytes) = memory.read_vec(bias.apply(addr), 64) {
                if let Some(v) = PythonVersion::parse_prefix(&String::from_utf8_lossy(&bytes)) {
                    return Some(v);
                }
            }
        }
    }
    scan_for_version_text(mappings, memory, minor_from_name_of(mappings))
}

fn minor_from_name_of(mappings: &[&MapEntry]) -> Option<u8> {
    mappings
        .first()
        .and_then(|m| m.path.as_deref())
        .and_then(minor_from_name)
}

/// Looks for `3.<minor>.<micro>... (` in the writable mappings of the
/// interpreter: the text of `sys.version`, written at start-up.
fn scan_for_version_text(
    mappings: &[&MapEntry],
    memory: &RemoteMemory,
    minor: Option<u8>,
) -> Option<PythonVersion> {
    const MAX_SCAN: u64 = 16 * 1024 * 1024;
    for mapping in mappings.iter().filter(|m| m.write && m.read) {
        let len = usize::try_from((mapping.end - mapping.start).min(MAX_SCAN)).ok()?;
        let Ok(bytes) = memory.read_vec(mapping.start, len) else {
            continue;
        };
        let mut at = 0;
        while let Some(pos) = find(&bytes[at..], b"3.") {
            let start = at + pos;
            at = start + 2;
            if start > 0 && bytes[start - 1] != 0 {
                continue;
            }
            let window = &bytes[start..(start + 32).min(bytes.len())];
            let text = String::from_utf8_lossy(window);
            if !text.contains(" (") {
                continue;
            }
            if let Some(v) = PythonVersion::parse_prefix(&text) {
                if minor.is_none_or(|m| m == v.minor) {
                    return Some(v);
                }
            }
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_hex_round_trips() {
        let v = PythonVersion::from_hex(0x030e_0af0).unwrap();
        assert_eq!(v.to_string(), "3.14.10");
        assert_eq!(v.to_hex(), 0x030e_0af0);
        let rc = PythonVersion::from_hex(0x030d_00c1).unwrap();
        assert_eq!(rc.to_string(), "3.13.0rc1");
        assert!(PythonVersion::from_hex(0x020d_00f0).is_none());
        assert!(PythonVersion::from_hex(0x030d_0000).is_none());
    }

    #[test]
    fn parses_sys_version_text() {
        let v =
            PythonVersion::parse_prefix("3.8.18 (default, May  9 2026, 07:33:03) \n[GCC 12.2.0]")
                .unwrap();
        assert_eq!((v.minor, v.micro, v.level), (8, 18, ReleaseLevel::Final));
        let rc = PythonVersion::parse_prefix("3.13.0rc2+ (heads/3.13:abc)").unwrap();
        assert_eq!(rc.to_string(), "3.13.0rc2");
        assert!(PythonVersion::parse_prefix("2.7.18 (default)").is_none());
        assert!(PythonVersion::parse_prefix("3.x").is_none());
    }

    #[test]
    fn minor_from_file_names() {
        assert_eq!(
            minor_from_name(Path::new("/usr/lib/libpython3.10.so.1.0")),
            Some(10)
        );
        assert_eq!(minor_from_name(Path::new("/usr/bin/python3.8")), Some(8));
        assert_eq!(minor_from_name(Path::new("/usr/bin/python")), None);
    }
}
