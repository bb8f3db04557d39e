//! Reading and writing another process's memory.
//!
//! `process_vm_readv`/`process_vm_writev` first (one syscall, no file
//! descriptor), `/proc/PID/mem` when they are unavailable or the page is not
//! writable that way (code pages: `/proc/PID/mem` writes with the kernel's
//! "force" semantics, as a debugger does). Both need ptrace-level access to
//! the target.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use thiserror::Error;

/// A failed access to the target's memory.
#[derive(Debug, Error)]
#[error("could not {op} {len} bytes at {addr:#x} in process {pid}: {source}")]
pub struct MemoryError {
    /// The target.
    pub pid: u32,
    /// `read` or `write`.
    pub op: &'static str,
    /// Start address.
    pub addr: u64,
    /// Number of bytes.
    pub len: usize,
    /// The system error (EPERM: no ptrace permission; EFAULT/EIO: unmapped).
    #[source]
    pub source: io::Error,
}

/// Access to one process's address space.
#[derive(Debug)]
pub struct RemoteMemory {
    pid: u32,
    mem: OnceLock<io::Result<File>>,
    pinned: bool,
}

impl RemoteMemory {
    /// Memory of process `pid` (nothing is opened until the first access).
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            mem: OnceLock::new(),
            pinned: false,
        }
    }

    /// Access to the memory of process `pid` *as it is now*: every read and
    /// write goes through a `/proc/PID/mem` descriptor opened here, which
    /// stays tied to this program image. After an `execve` it fails (or
    /// reaches the old image, on its way out) instead of touching the new
    /// program at addresses that meant something else in the old one.
    ///
    /// # Errors
    /// The error of opening `/proc/PID/mem`.
    pub fn pinned(pid: u32) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))?;
        let mem = OnceLock::new();
        let _ = mem.set(Ok(file));
        Ok(Self {
            pid,
            mem,
            pinned: true,
        })
    }

    /// The process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fills `buf` from address `addr`.
    ///
    /// # Errors
    /// [`MemoryError`] when the range is not mapped or access is denied.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if self.pinned {
            return self
                .mem_file()
                .and_then(|f| f.read_exact_at(buf, addr))
                .map_err(|source| self.error("read", addr, buf.len(), source));
        }
        match vm_transfer(self.pid, addr, buf.as_mut_ptr(), buf.len(), false) {
            Ok(()) => Ok(()),
            Err(e) if fallback_worth_trying(&e) => self
                .mem_file()
                .and_then(|f| f.read_exact_at(buf, addr))
                .map_err(|source| self.error("read", addr, buf.len(), source)),
            Err(source) => Err(self.error("read", addr, buf.len(), source)),
        }
    }

    /// Writes `data` at address `addr`, including into read-only (code) pages.
    ///
    /// # Errors
    /// [`MemoryError`] when the range is not mapped or access is denied.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        if self.pinned {
            return self
                .mem_file()
                .and_then(|f| f.write_all_at(data, addr))
                .map_err(|source| self.error("write", addr, data.len(), source));
        }
        // process_vm_writev takes a *mut pointer for the local side but does
        // not write through it.
        match vm_transfer(self.pid, addr, data.as_ptr().cast_mut(), data.len(), true) {
            Ok(()) => Ok(()),
            Err(e) if fallback_worth_trying(&e) => self
                .mem_file()
                .and_then(|f| f.write_all_at(data, addr))
                .map_err(|source| self.error("write", addr, data.len(), source)),
            Err(source) => Err(self.error("write", addr, data.len(), source)),
        }
    }

    /// Reads `len` bytes into a new vector.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut buf = vec![0; len];
        self.read(addr, &mut buf)?;
        Ok(buf)
    }

    /// Reads a native-endian `u64`.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut buf = [0; 8];
        self.read(addr, &mut buf)?;
        Ok(u64::from_ne_bytes(buf))
    }

    /// Reads a native-endian `u32`.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut buf = [0; 4];
        self.read(addr, &mut buf)?;
        Ok(u32::from_ne_bytes(buf))
    }

    /// Writes a native-endian `u32`.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_u32(&self, addr: u64, value: u32) -> Result<(), MemoryError> {
        self.write(addr, &value.to_ne_bytes())
    }

    /// Writes a native-endian `u64`.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_u64(&self, addr: u64, value: u64) -> Result<(), MemoryError> {
        self.write(addr, &value.to_ne_bytes())
    }

    fn mem_file(&self) -> io::Result<&File> {
        self.mem
            .get_or_init(|| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(format!("/proc/{}/mem", self.pid))
                    .or_else(|_| File::open(format!("/proc/{}/mem", self.pid)))
            })
            .as_ref()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
    }

    fn error(&self, op: &'static str, addr: u64, len: usize, source: io::Error) -> MemoryError {
        MemoryError {
            pid: self.pid,
            op,
            addr,
            len,
            source,
        }
    }
}

/// EFAULT covers read-only pages for writes; ENOSYS kernels without the
/// syscalls; EPERM some seccomp profiles that block only these syscalls.
fn fallback_worth_trying(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EFAULT | libc::ENOSYS | libc::EPERM)
    )
}

/// One `process_vm_readv`/`writev`, repeated until the whole range moved.
fn vm_transfer(pid: u32, addr: u64, local: *mut u8, len: usize, write: bool) -> io::Result<()> {
    let mut done = 0usize;
    while done < len {
        let local_iov = libc::iovec {
            // SAFETY: `done < len`, so the pointer stays inside the caller's buffer.
            iov_base: unsafe { local.add(done) }.cast(),
            iov_len: len - done,
        };
        let remote_iov = libc::iovec {
            iov_base: (addr + done as u64) as *mut libc::c_void,
            iov_len: len - done,
        };
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: both iovecs describe valid ranges: the local one lies within
        // the caller's buffer, the remote one is only interpreted by the kernel.
        let n = unsafe {
            if write {
                libc::process_vm_writev(pid, &local_iov, 1, &remote_iov, 1, 0)
            } else {
                libc::process_vm_readv(pid, &local_iov, 1, &remote_iov, 1, 0)
            }
        };
        match n {
            -1 => return Err(io::Error::last_os_error()),
            0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            n => done += n as usize,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_own_memory() {
        let mut value: u64 = 0x1122_3344_5566_7788;
        let addr = std::ptr::addr_of_mut!(value) as u64;
        let mem = RemoteMemory::new(std::process::id());
        assert_eq!(mem.read_u64(addr).unwrap(), 0x1122_3344_5566_7788);
        mem.write_u64(addr, 42).unwrap();
        // SAFETY: the kernel wrote through our own address space; re-read it
        // volatilely so the compiler does not reuse the old value.
        assert_eq!(unsafe { std::ptr::read_volatile(&value) }, 42);
        value = 7;
        assert_eq!(mem.read_u64(addr).unwrap(), value);
    }

    #[test]
    fn unmapped_address_is_an_error() {
        let mem = RemoteMemory::new(std::process::id());
        let err = mem.read_u64(8).unwrap_err();
        assert_eq!(err.addr, 8);
        assert!(err.to_string().contains("could not read 8 bytes"));
    }
}
