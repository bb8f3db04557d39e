//! Where a system-call trampoline can run: padding at the end of an
//! executable mapping.
//!
//! The last page of a file's executable segment is mapped executable as a
//! whole, but the bytes between the segment's end and the page's end are
//! no instruction of the program: nothing jumps there. A trampoline of a
//! few dozen bytes written there (through `/proc/PID/mem`, which copies
//! the page on write, so the file and other processes are untouched) is
//! reached only by the thread we point at it. The bytes are put back as
//! soon as that thread has left; if the tracer is killed first, they stay
//! in padding that nothing executes.
//!
//! The padding must currently hold only zero or `int3` fill bytes, so that
//! code of the program is never mistaken for padding, or a trampoline an
//! earlier attach left there when it was killed: that one is put back to
//! zeros and the place used again.

use std::path::Path;

use super::trampoline::{is_syscall_trampoline, SYSCALL_TRAMPOLINE_LEN};
use crate::elf::{is_libc, page_size, ElfFile};
use crate::error::AttachError;
use crate::memory::RemoteMemory;
use crate::method::Method;
use crate::procfs::MapEntry;
use crate::target::Target;

/// Bytes kept free of the segment's end.
const GAP: u64 = 16;

/// Finds padding for a system-call trampoline in the target: in the
/// interpreter's file first, then the C library, then any mapped file.
///
/// # Errors
/// [`AttachError::MethodUnavailable`] when no executable mapping has room.
pub(crate) fn find(target: &Target) -> Result<u64, AttachError> {
    find_in(
        target.pid,
        &target.maps,
        Some(target.python.path.as_path()),
        &target.memory,
    )
    .ok_or_else(|| AttachError::MethodUnavailable {
        method: Method::Ptrace,
        pid: target.pid,
        why: format!(
            "no executable mapping of the target has {SYSCALL_TRAMPOLINE_LEN} bytes of padding for the ptrace \
             method's trampoline"
        ),
    })
}

/// Finds padding in process `pid` with mappings `maps`, in `preferred`'s
/// mappings first, then the C library's, then any file's.
pub(crate) fn find_in(
    pid: u32,
    maps: &[MapEntry],
    preferred: Option<&Path>,
    memory: &RemoteMemory,
) -> Option<u64> {
    let mut paths: Vec<&Path> = Vec::new();
    for mapping in maps.iter().filter(|m| m.exec && m.is_file()) {
        if let Some(path) = mapping.path.as_deref() {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths.sort_by_key(|p| (Some(*p) != preferred, !is_libc(p)));
    paths.into_iter().find_map(|path| {
        let mappings: Vec<&MapEntry> = maps
            .iter()
            .filter(|m| m.is_file() && m.path.as_deref() == Some(path))
            .collect();
        padding_in(pid, &mappings, memory)
    })
}

fn padding_in(pid: u32, mappings: &[&MapEntry], memory: &RemoteMemory) -> Option<u64> {
    let first = mappings.first()?;
    let elf = ElfFile::open_mapped(pid, first).ok()?;
    let bias = elf.load_bias(mappings)?;
    let page = page_size();
    for (address, size) in elf.executable_segments() {
        let end = bias.apply(address + size);
        let start = (end + GAP + 15) & !15;
        let page_end = (end + page - 1) & !(page - 1);
        if start + SYSCALL_TRAMPOLINE_LEN as u64 > page_end {
            continue;
        }
        let mapped = mappings
            .iter()
            .any(|m| m.exec && m.start <= end && page_end <= m.end);
        if !mapped {
            continue;
        }
        let Ok(bytes) = memory.read_vec(end, (page_end - end) as usize) else {
            continue;
        };
        let offset = (start - end) as usize;
        let len = SYSCALL_TRAMPOLINE_LEN;
        let leftover = is_syscall_trampoline(&bytes[offset..]);
        let fill = |b: &u8| *b == 0 || *b == 0xcc;
        let rest_is_fill =
            bytes[..offset].iter().all(fill) && bytes[offset + len..].iter().all(fill);
        if leftover && rest_is_fill {
            // Left by an attach whose tracer was killed: put the padding
            // back (nothing executes it; the thread that ran it finished it
            // long ago), and use it.
            if memory.write(start, &[0; SYSCALL_TRAMPOLINE_LEN]).is_ok() {
                return Some(start);
            }
            continue;
        }
        if bytes.iter().all(fill) {
            return Some(start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own process has such padding, and it is inside an executable
    /// mapping, past the end of the code of its file.
    #[test]
    fn finds_padding_in_our_own_libraries() {
        let pid = std::process::id();
        let maps = MapEntry::read_all(pid).unwrap();
        let memory = RemoteMemory::new(pid);
        let mut found = 0;
        let mut paths: Vec<_> = maps
            .iter()
            .filter(|m| m.exec && m.is_file())
            .filter_map(|m| m.path.clone())
            .collect();
        paths.dedup();
        for path in paths {
            let mappings: Vec<&MapEntry> = maps
                .iter()
                .filter(|m| m.path.as_ref() == Some(&path))
                .collect();
            if let Some(address) = padding_in(pid, &mappings, &memory) {
                found += 1;
                assert!(mappings
                    .iter()
                    .any(|m| m.exec && m.start <= address && address < m.end));
                let bytes = memory.read_vec(address, SYSCALL_TRAMPOLINE_LEN).unwrap();
                assert!(bytes.iter().all(|&b| b == 0 || b == 0xcc));
            }
        }
        assert!(found > 0, "no padding in any of our executable mappings");
    }
}
