//! Pages of the target's memory holding a program (see `trampoline`) and
//! the runner code it hands to CPython.
//!
//! The pages are mapped with a raw `mmap` system call made by a stopped
//! thread (no allocator, so no allocator lock can be involved), readable
//! and executable but not writable for the target (we write them through
//! `/proc/PID/mem`). They must stay mapped for as long as a thread may run
//! the program or a queued call may still read the runner code; see the
//! backend's documentation for when they are unmapped and when they are
//! left.

use std::time::Instant;

use super::registers::{SYS_MMAP, SYS_MUNMAP};
use super::remote_call::{HijackedThread, OtherThreads};
use super::threads::TracedThreads;
use crate::elf::page_size;
use crate::error::AttachError;
use crate::method::Method;
use crate::procfs::ProcStatus;

/// Mapped pages of the target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScratchPage {
    address: u64,
    len: u64,
}

impl ScratchPage {
    /// Maps at least `size` bytes of zeroed, readable and executable
    /// anonymous memory in the target with `thread`.
    ///
    /// # Errors
    /// [`AttachError::Seccomp`] when a filter refused `mmap`, another
    /// [`AttachError`] when the call failed (nothing is mapped then).
    pub(crate) fn map(
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        size: u64,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<Self, AttachError> {
        let page = page_size();
        let len = size.div_ceil(page).max(1) * page;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let protection = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let result = thread.syscall(
            threads,
            SYS_MMAP,
            [0, len, protection, flags, u64::MAX, 0],
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
        Ok(Self {
            address: result as u64,
            len,
        })
    }

    /// Where the pages start.
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
