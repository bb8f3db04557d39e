//! ELF files of the target, opened the way the target sees them.
//!
//! A mapped file is opened through `/proc/PID/map_files/` (the exact file
//! that is mapped, even if it was deleted, upgraded on disk or lives in
//! another mount namespace), then `/proc/PID/root/<path>` (the target's
//! mount namespace), and memory-mapped read-only.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

use crate::procfs::MapEntry;

/// The target's `/proc/PID/root`-relative view of `path`.
pub fn path_in_root(pid: u32, path: &Path) -> PathBuf {
    let relative = path.strip_prefix("/").unwrap_or(path);
    PathBuf::from(format!("/proc/{pid}/root")).join(relative)
}

/// A parsed ELF file, memory-mapped.
#[derive(Debug)]
pub struct ElfFile {
    map: Mmap,
    opened_as: PathBuf,
}

/// Where the target keeps a file's code and data: the file's link-time
/// addresses plus this bias give run-time addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBias(pub u64);

impl LoadBias {
    /// The run-time address of a link-time address.
    pub fn apply(self, link_address: u64) -> u64 {
        link_address.wrapping_add(self.0)
    }
}

impl ElfFile {
    /// Opens and parses the file mapped by `mapping` in process `pid`.
    ///
    /// # Errors
    /// The I/O error of the last way tried, or `InvalidData` when the file
    /// is not an ELF object.
    pub fn open_mapped(pid: u32, mapping: &MapEntry) -> io::Result<Self> {
        let mut candidates = vec![mapping.map_files_path(pid)];
        if let Some(path) = &mapping.path {
            candidates.push(path_in_root(pid, path));
            // Maps show paths relative to *our* root when the file is
            // reachable from it (a chroot below ours).
            candidates.push(path.clone());
        }
        let mut last_error = io::Error::from(io::ErrorKind::NotFound);
        for candidate in candidates {
            match Self::open(&candidate) {
                Ok(elf) => return Ok(elf),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Opens and parses the ELF file at `path`.
    ///
    /// # Errors
    /// The I/O error, or `InvalidData` when it is not an ELF object.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: the map is read-only and private; a concurrent truncation of
        // the file could fault, which is why callers prefer map_files (the
        // mapped inode, which the target keeps alive).
        let map = unsafe { Mmap::map(&file)? };
        object::File::parse(&*map).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Self {
            map,
            opened_as: path.to_owned(),
        })
    }

    /// The path it was opened through.
    pub fn opened_as(&self) -> &Path {
        &self.opened_as
    }

    fn object(&self) -> object::File<'_> {
        // Parsing succeeded in `open`, and the bytes cannot change.
        object::File::parse(&*self.map).unwrap_or_else(|_| unreachable!("parsed in open"))
    }

    /// The link-time address of a defined symbol, from `.dynsym` first
    /// (exported, present even in stripped builds), then `.symtab`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let file = self.object();
        let found = file
            .dynamic_symbols()
            .chain(file.symbols())
            .find(|s| !s.is_undefined() && s.name() == Ok(name))?;
        Some(found.address())
    }

    /// Whether the file exports (in `.dynsym`) a defined symbol `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.object()
            .dynamic_symbols()
            .any(|s| !s.is_undefined() && s.name() == Ok(name))
    }

    /// Link-time address and size of section `name`.
    pub fn section(&self, name: &str) -> Option<(u64, u64)> {
        let file = self.object();
        let section = file.section_by_name(name)?;
        Some((section.address(), section.size()))
    }

    /// The machine the file is built for.
    pub fn architecture(&self) -> object::Architecture {
        self.object().architecture()
    }

    /// The entry point's link-time address.
    pub fn entry(&self) -> u64 {
        self.object().entry()
    }

    /// The executable loadable segments: link-time address and size in
    /// the file of each.
    pub fn executable_segments(&self) -> Vec<(u64, u64)> {
        self.object()
            .segments()
            .filter(|s| {
                matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0)
            })
            .map(|s| (s.address(), s.file_range().1))
            .collect()
    }

    /// The load bias of this file in a process, given that file's mappings.
    ///
    /// It is the start of the mapping of file offset 0 minus the first
    /// loadable segment's address rounded down to the page size: 0 for a
    /// non-PIE executable.
    pub fn load_bias(&self, mappings: &[&MapEntry]) -> Option<LoadBias> {
        let file = self.object();
        let first_load = file.segments().map(|s| s.address()).min()?;
        let base = mappings
            .iter()
            .filter(|m| m.offset == 0)
            .map(|m| m.start)
            .min()?;
        let page = page_size();
        Some(LoadBias(base.wrapping_sub(first_load & !(page - 1))))
    }
}

/// Whether a mapped file is a C library: glibc's `libc.so.6` or
/// `libc-2.X.so`, or musl's `ld-musl-<arch>.so.1` / `libc.musl-<arch>.so.1`.
pub(crate) fn is_libc(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with("libc.so")
        || (name.starts_with("libc-") && name.ends_with(".so"))
        || name.starts_with("ld-musl-")
        || name.starts_with("libc.musl-")
}

/// The system page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own libc's `getpid`, resolved through maps + ELF, must be the
    /// address the dynamic linker gave us.
    #[test]
    fn resolves_own_libc_symbol_to_its_runtime_address() {
        let pid = std::process::id();
        let maps = MapEntry::read_all(pid).unwrap();
        let libc_maps: Vec<&MapEntry> = maps
            .iter()
            .filter(|m| {
                m.path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
            })
            .collect();
        let elf = ElfFile::open_mapped(pid, libc_maps[0]).unwrap();
        let bias = elf.load_bias(&libc_maps).unwrap();
        let getpid = bias.apply(elf.symbol("getpid").unwrap());
        assert_eq!(getpid, libc::getpid as *const () as u64);
        assert!(elf.exports("getpid"));
        assert!(!elf.exports("no_such_symbol_anywhere"));
    }

    #[test]
    fn recognizes_c_libraries() {
        assert!(is_libc(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")));
        assert!(is_libc(Path::new("/lib/libc-2.31.so")));
        assert!(is_libc(Path::new("/lib/ld-musl-x86_64.so.1")));
        assert!(!is_libc(Path::new("/usr/lib/libcrypto.so.3")));
        assert!(!is_libc(Path::new("/usr/lib/libc++.so.1")));
    }
}
