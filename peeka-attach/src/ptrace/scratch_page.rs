//! A page of the target's memory holding the runner code for a queued
//! pending call.
//!
//! The page is mapped with a raw `mmap` system call made by a stopped
//! thread (no allocator, so no allocator lock can be involved), read-only
//! for the target (we write it through `/proc/PID/mem`). It must stay
//! mapped for as long as the queued call may still read it; see the
//! backend's documentation for when it is unmapped and when it is left.

use std::time::Instant;

use super::registers::{SYS_MMAP, SYS_MUNMAP};
use super::remote_call::{HijackedThread, OtherThreads};
use super::threads::TracedThreads;
use crate::elf::page_size;
use crate::error::AttachError;
use crate::method::Method;
use crate::procfs::ProcStatus;

/// A mapped page of the target holding a NUL-terminated string.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScratchPage {
    address: u64,
    len: u64,
}

impl ScratchPage {
    /// Maps a read-only anonymous page (or several) in the target with
    /// `thread` and writes `contents` into it.
    ///
    /// # Errors
    /// [`AttachError::Seccomp`] when a filter refused `mmap`, another
    /// [`AttachError`] when the call or the write failed (nothing is left
    /// mapped then).
    pub(crate) fn map(
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        contents: &[u8],
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<Self, AttachError> {
        let page = page_size();
        let len = (contents.len() as u64).div_ceil(page).max(1) * page;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let result = thread.syscall(
            threads,
            SYS_MMAP,
            [0, len, libc::PROT_READ as u64, flags, u64::MAX, 0],
            deadline,
            &mut *others,
        )?;
        if (-4095..0).contains(&result) {
            let errno = i32::try_from(-result).unwrap_or(0);
            let pid = threads.pid();
            let filtered = ProcStatus::read(pid).is_ok_and(|s| s.seccomp == 2);
            if filtered && matches!(errno, libc::EPERM | libc::EACCES) {
                return Err(AttachError::Seccomp {
                    pid,
                    syscall: "mmap",
                });
            }
            return Err(AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid,
                why: format!(
                    "mmap of {len} bytes inside the target failed: {}; the process may be out of memory or \
                     address space",
                    std::io::Error::from_raw_os_error(errno)
                ),
            });
        }
        let scratch = Self {
            address: result as u64,
            len,
        };
        if let Err(e) = threads.memory().write(scratch.address, contents) {
            let _ = scratch.unmap(thread, threads, deadline, others);
            return Err(e.into());
        }
        Ok(scratch)
    }

    /// Where the contents start.
    pub(crate) fn address(&self) -> u64 {
        self.address
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Unmaps the page with a raw `munmap` made by `thread`.
    ///
    /// # Errors
    /// A failed call, or `munmap`'s error.
    pub(crate) fn unmap(
        self,
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<(), AttachError> {
        let result = thread.syscall(
            threads,
            SYS_MUNMAP,
            [self.address, self.len, 0, 0, 0, 0],
            deadline,
            others,
        )?;
        if result != 0 {
            return Err(AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid: threads.pid(),
                why: format!(
                    "munmap of the runner page at {:#x} failed: {}",
                    self.address,
                    std::io::Error::from_raw_os_error(i32::try_from(-result).unwrap_or(0))
                ),
            });
        }
        Ok(())
    }
}
