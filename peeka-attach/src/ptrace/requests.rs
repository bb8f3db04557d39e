//! Thin wrappers around the `ptrace(2)`, `waitpid(2)` and signal-sending
//! system calls the backend uses, with the `unsafe` confined here.
//!
//! Every tracing request must come from the thread that seized the tracee:
//! the kernel ties a tracee to one tracer *thread*. The backend therefore
//! never hands a traced thread to another of our threads.

use std::io;

/// `PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
/// PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC`: system-call stops are told
/// apart from `SIGTRAP`s, new threads are traced automatically, forked
/// children are reported (so the bytes they inherit can be put back), and
/// an `execve` is reported (so we never "restore" bytes into a new program
/// image).
pub(crate) const TRACE_OPTIONS: u64 = 0x01 | 0x02 | 0x04 | 0x08 | 0x10;

/// `PTRACE_EVENT_FORK`.
pub(crate) const EVENT_FORK: i32 = 1;
/// `PTRACE_EVENT_VFORK`.
pub(crate) const EVENT_VFORK: i32 = 2;
/// `PTRACE_EVENT_CLONE`.
pub(crate) const EVENT_CLONE: i32 = 3;
/// `PTRACE_EVENT_EXEC`.
pub(crate) const EVENT_EXEC: i32 = 4;

/// `NT_PRSTATUS`: the general-purpose registers.
pub(crate) const NT_PRSTATUS: u32 = 1;
/// `NT_PRFPREG`: the basic floating-point registers.
pub(crate) const NT_PRFPREG: u32 = 2;

const PTRACE_CONT: u32 = 7;
const PTRACE_SYSCALL: u32 = 24;
const PTRACE_DETACH: u32 = 17;
const PTRACE_GETEVENTMSG: u32 = 0x4201;
const PTRACE_GETSIGINFO: u32 = 0x4202;
const PTRACE_SETSIGINFO: u32 = 0x4203;
const PTRACE_GETREGSET: u32 = 0x4204;
const PTRACE_SETREGSET: u32 = 0x4205;
const PTRACE_SEIZE: u32 = 0x4206;
const PTRACE_INTERRUPT: u32 = 0x4207;
const PTRACE_GET_SYSCALL_INFO: u32 = 0x420e;

/// A `siginfo_t`, kept as the kernel's 128 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub(crate) struct RawSiginfo(pub(crate) [u8; 128]);

impl RawSiginfo {
    fn int_at(&self, offset: usize) -> i32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[offset..offset + 4]);
        i32::from_ne_bytes(bytes)
    }

    /// `si_signo`.
    pub(crate) fn signo(&self) -> i32 {
        self.int_at(0)
    }

    /// `si_code`: positive when the kernel raised it for a reason of its
    /// own (a fault, a timer, ...), zero or negative when a process sent it.
    pub(crate) fn code(&self) -> i32 {
        self.int_at(8)
    }

    /// For `SIGSYS`: the number of the system call that was refused.
    pub(crate) fn syscall(&self) -> i32 {
        self.int_at(24)
    }
}

impl std::fmt::Debug for RawSiginfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSiginfo")
            .field("signo", &self.signo())
            .field("code", &self.code())
            .finish()
    }
}

fn pid_t(tid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(tid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// One `ptrace` request whose `addr` and `data` are plain values, or
/// pointers the caller has made valid for the request.
///
/// # Safety
/// For requests that read or write through `addr`/`data`, those must point
/// to memory of the size the request implies.
unsafe fn request(op: u32, tid: u32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    let tid = pid_t(tid)?;
    // SAFETY: the caller guarantees the pointers (if any) are valid for `op`.
    let result = unsafe {
        libc::ptrace(
            op as _,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// `PTRACE_SEIZE` with [`TRACE_OPTIONS`]: traces `tid` without stopping it.
pub(crate) fn seize(tid: u32) -> io::Result<()> {
    // SAFETY: SEIZE takes the options by value and reads no memory.
    unsafe { request(PTRACE_SEIZE, tid, 0, TRACE_OPTIONS as usize) }.map(drop)
}

/// `PTRACE_INTERRUPT`: asks a seized thread to stop.
pub(crate) fn interrupt(tid: u32) -> io::Result<()> {
    // SAFETY: no memory is passed.
    unsafe { request(PTRACE_INTERRUPT, tid, 0, 0) }.map(drop)
}

/// `PTRACE_CONT`, delivering `signal` (0 for none) when the thread is in a
/// signal-delivery stop.
pub(crate) fn cont(tid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: the signal is passed by value.
    unsafe { request(PTRACE_CONT, tid, 0, signal as usize) }.map(drop)
}

/// `PTRACE_DETACH`, delivering `signal` (0 for none) when the thread is in
/// a signal-delivery stop.
/// Whether a thread in a system-call stop is at the call's exit (`true`)
/// or its entry (`false`), from `PTRACE_GET_SYSCALL_INFO` (Linux 5.3+).
pub(crate) fn at_syscall_exit(tid: u32) -> io::Result<bool> {
    /// `PTRACE_SYSCALL_INFO_EXIT`.
    const EXIT: u8 = 2;
    let mut info = [0u64; 11];
    // SAFETY: the kernel writes at most `size_of_val(&info)` bytes into it.
    unsafe {
        request(
            PTRACE_GET_SYSCALL_INFO,
            tid,
            std::mem::size_of_val(&info),
            info.as_mut_ptr() as usize,
        )
    }?;
    Ok(info[0].to_ne_bytes()[0] == EXIT)
}

/// `PTRACE_SYSCALL`: like [`cont`], and stop at the next system-call entry
/// or exit.
pub(crate) fn syscall(tid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: the signal is passed by value.
    unsafe { request(PTRACE_SYSCALL, tid, 0, signal as usize) }.map(drop)
}

pub(crate) fn detach(tid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: the signal is passed by value.
    unsafe { request(PTRACE_DETACH, tid, 0, signal as usize) }.map(drop)
}

/// `PTRACE_GETEVENTMSG`: e.g. the new thread's id after a clone event.
pub(crate) fn event_message(tid: u32) -> io::Result<u64> {
    // `unsigned long`: 64 bits on every architecture this backend supports.
    let mut message: u64 = 0;
    // SAFETY: the kernel writes one unsigned long into `message`.
    unsafe {
        request(
            PTRACE_GETEVENTMSG,
            tid,
            0,
            std::ptr::addr_of_mut!(message) as usize,
        )
    }?;
    Ok(message)
}

/// `PTRACE_GETSIGINFO`: the signal of the current signal-delivery stop.
pub(crate) fn siginfo(tid: u32) -> io::Result<RawSiginfo> {
    let mut info = RawSiginfo([0; 128]);
    // SAFETY: the kernel writes one siginfo_t (128 bytes) into `info`.
    unsafe {
        request(
            PTRACE_GETSIGINFO,
            tid,
            0,
            std::ptr::addr_of_mut!(info) as usize,
        )
    }?;
    Ok(info)
}

/// `PTRACE_SETSIGINFO`: replaces the signal information of the current
/// signal-delivery stop (used to re-deliver a signal exactly as it came).
pub(crate) fn set_siginfo(tid: u32, info: &RawSiginfo) -> io::Result<()> {
    // SAFETY: the kernel reads one siginfo_t (128 bytes) from `info`.
    unsafe { request(PTRACE_SETSIGINFO, tid, 0, std::ptr::from_ref(info) as usize) }.map(drop)
}

/// `PTRACE_GETREGSET`: fills `buffer` with register set `kind` and returns
/// how many bytes the kernel wrote.
pub(crate) fn get_regset(tid: u32, kind: u32, buffer: &mut [u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: the kernel writes at most `iov_len` bytes into the buffer and
    // updates `iov_len`.
    unsafe {
        request(
            PTRACE_GETREGSET,
            tid,
            kind as usize,
            std::ptr::addr_of_mut!(iov) as usize,
        )
    }?;
    Ok(iov.iov_len)
}

/// `PTRACE_SETREGSET`: writes register set `kind` from `data`.
pub(crate) fn set_regset(tid: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: the kernel reads `iov_len` bytes from the buffer and does not
    // write through the pointer.
    unsafe {
        request(
            PTRACE_SETREGSET,
            tid,
            kind as usize,
            std::ptr::from_ref(&iov) as usize,
        )
    }
    .map(drop)
}

/// `waitpid(tid, __WALL | WNOHANG)`: the next status change of one traced
/// thread, if it has one. Waiting for a specific thread (never `-1`) keeps
/// us from reaping children or tracees that belong to other code in our
/// process.
pub(crate) fn poll_status(tid: u32) -> io::Result<Option<WaitStatus>> {
    let pid = pid_t(tid)?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-parameter.
        let result = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
        match result {
            0 => return Ok(None),
            -1 => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            _ => return Ok(Some(WaitStatus::decode(status))),
        }
    }
}

/// `tgkill(pid, tid, signal)`: sends a signal to one thread.
pub(crate) fn tgkill(pid: u32, tid: u32, signal: i32) -> io::Result<()> {
    let (pid, tid) = (pid_t(pid)?, pid_t(tid)?);
    // SAFETY: tgkill takes three integers.
    let result = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `rt_tgsigqueueinfo`: queues a signal with its original information.
/// The kernel accepts it from another process only for negative `si_code`
/// values other than `SI_TKILL` (e.g. `sigqueue`, timers).
pub(crate) fn tgsigqueueinfo(pid: u32, tid: u32, signal: i32, info: &RawSiginfo) -> io::Result<()> {
    let (pid, tid) = (pid_t(pid)?, pid_t(tid)?);
    let mut copy = *info;
    // SAFETY: the kernel reads one siginfo_t from `copy`.
    let result = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            signal,
            std::ptr::addr_of_mut!(copy),
        )
    };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What `waitpid` reported for a traced thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitStatus {
    /// The thread exited with this status.
    Exited(i32),
    /// The thread was killed by this signal.
    Killed(i32),
    /// A signal-delivery stop: the signal is delivered when the thread is
    /// restarted with it, and suppressed when restarted without.
    SignalStop(i32),
    /// A system-call entry or exit stop (`PTRACE_SYSCALL` with
    /// `PTRACE_O_TRACESYSGOOD`).
    SyscallStop,
    /// A `PTRACE_EVENT_*` stop.
    EventStop {
        /// The event (`EVENT_CLONE`, or 128 for `PTRACE_EVENT_STOP`, ...).
        event: i32,
        /// The stop signal (`SIGTRAP` for events and interrupts, the stop
        /// signal for a group stop).
        signal: i32,
    },
    /// Anything else (not expected with the flags we use).
    Other(i32),
}

impl WaitStatus {
    /// Decodes a raw `waitpid` status.
    pub(crate) fn decode(status: i32) -> Self {
        let low = status & 0x7f;
        if low == 0 {
            Self::Exited((status >> 8) & 0xff)
        } else if status & 0xff == 0x7f {
            let signal = (status >> 8) & 0xff;
            match status >> 16 {
                0 if signal == libc::SIGTRAP | 0x80 => Self::SyscallStop,
                0 => Self::SignalStop(signal),
                event => Self::EventStop { event, signal },
            }
        } else if low != 0x7f {
            Self::Killed(low)
        } else {
            Self::Other(status)
        }
    }
}

/// The name of a signal, for messages (`SIGSEGV`, or `signal 42`).
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSTOP => "SIGSTOP",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        assert_eq!(WaitStatus::decode(0x0300), WaitStatus::Exited(3));
        assert_eq!(
            WaitStatus::decode(libc::SIGKILL),
            WaitStatus::Killed(libc::SIGKILL)
        );
        assert_eq!(
            WaitStatus::decode((libc::SIGUSR1 << 8) | 0x7f),
            WaitStatus::SignalStop(libc::SIGUSR1)
        );
        assert_eq!(
            WaitStatus::decode((EVENT_CLONE << 16) | (libc::SIGTRAP << 8) | 0x7f),
            WaitStatus::EventStop {
                event: EVENT_CLONE,
                signal: libc::SIGTRAP
            }
        );
        assert_eq!(
            WaitStatus::decode(((libc::SIGTRAP | 0x80) << 8) | 0x7f),
            WaitStatus::SyscallStop
        );
        assert_eq!(
            WaitStatus::decode((128 << 16) | (libc::SIGSTOP << 8) | 0x7f),
            WaitStatus::EventStop {
                event: 128,
                signal: libc::SIGSTOP
            }
        );
    }

    #[test]
    fn siginfo_fields_are_read_from_the_kernel_layout() {
        let mut raw = RawSiginfo([0; 128]);
        raw.0[..4].copy_from_slice(&libc::SIGSYS.to_ne_bytes());
        raw.0[8..12].copy_from_slice(&1i32.to_ne_bytes());
        raw.0[24..28].copy_from_slice(&9i32.to_ne_bytes());
        assert_eq!(
            (raw.signo(), raw.code(), raw.syscall()),
            (libc::SIGSYS, 1, 9)
        );
    }

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(42), "signal 42");
    }
}
