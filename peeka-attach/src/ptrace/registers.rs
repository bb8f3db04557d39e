//! Saving and restoring a stopped thread's registers exactly, and setting
//! them up for a system call or a function call.
//!
//! The general-purpose registers are read with `PTRACE_GETREGSET
//! NT_PRSTATUS` (the same call on every architecture). The rest of the
//! thread's register state, which a called function may clobber, is saved
//! as opaque register sets and written back byte for byte: the whole XSAVE
//! area on x86-64 (AVX, AVX-512 and AMX state included; the legacy FXSAVE
//! area when the kernel has no XSAVE support), the FP/SIMD and SVE state
//! and the system-call number on aarch64.

use std::fmt;
use std::io;

use super::requests;

pub(crate) use arch::*;

/// The general-purpose registers, as the kernel's `user_regs_struct`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct GeneralRegs {
    words: [u64; WORDS],
}

impl GeneralRegs {
    /// Reads the registers of stopped thread `tid`.
    pub(crate) fn read(tid: u32) -> io::Result<Self> {
        let mut bytes = [0u8; WORDS * 8];
        let len = requests::get_regset(tid, requests::NT_PRSTATUS, &mut bytes)?;
        if len != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the kernel returned {len} bytes of general registers, expected {}",
                    bytes.len()
                ),
            ));
        }
        let mut words = [0u64; WORDS];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut raw = [0; 8];
            raw.copy_from_slice(chunk);
            *word = u64::from_ne_bytes(raw);
        }
        Ok(Self { words })
    }

    /// Writes these registers into stopped thread `tid`.
    pub(crate) fn write(&self, tid: u32) -> io::Result<()> {
        let mut bytes = [0u8; WORDS * 8];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        requests::set_regset(tid, requests::NT_PRSTATUS, &bytes)
    }
}

impl fmt::Debug for GeneralRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneralRegs")
            .field("pc", &format_args!("{:#x}", self.pc()))
            .field("sp", &format_args!("{:#x}", self.sp()))
            .finish()
    }
}

/// One opaque register set, saved to be written back unchanged.
#[derive(Clone, PartialEq, Eq)]
struct RegisterSet {
    kind: u32,
    bytes: Vec<u8>,
}

/// Everything a remote call may change in a thread's registers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Registers {
    general: GeneralRegs,
    extra: Vec<RegisterSet>,
}

impl fmt::Debug for Registers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registers")
            .field("general", &self.general)
            .field(
                "extra_sets",
                &self
                    .extra
                    .iter()
                    .map(|s| (s.kind, s.bytes.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Registers {
    /// Saves the registers of stopped thread `tid`.
    pub(crate) fn save(tid: u32) -> io::Result<Self> {
        let general = GeneralRegs::read(tid)?;
        let mut extra = Vec::new();
        for &(kinds, required) in EXTRA_SETS {
            let mut saved = None;
            let mut last_error = None;
            for &kind in kinds {
                match read_set(tid, kind) {
                    Ok(bytes) => {
                        saved = Some(RegisterSet { kind, bytes });
                        break;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            match (saved, last_error) {
                (Some(set), _) => extra.push(set),
                (None, Some(e)) if required => return Err(e),
                (None, _) => {}
            }
        }
        Ok(Self { general, extra })
    }

    /// The saved general-purpose registers.
    pub(crate) fn general(&self) -> &GeneralRegs {
        &self.general
    }

    /// Writes every saved register back into stopped thread `tid`.
    pub(crate) fn restore(&self, tid: u32) -> io::Result<()> {
        for set in &self.extra {
            requests::set_regset(tid, set.kind, &set.bytes)?;
        }
        self.general.write(tid)
    }
}

/// Reads one register set whole, whatever its size.
fn read_set(tid: u32, kind: u32) -> io::Result<Vec<u8>> {
    // Large enough for any XSAVE layout shipped so far (AMX makes it about
    // 11 KiB); the kernel reports the size it actually wrote.
    let mut bytes = vec![0u8; 64 * 1024];
    let len = requests::get_regset(tid, kind, &mut bytes)?;
    if len == 0 || len >= bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("register set {kind:#x} has an unexpected size ({len} bytes)"),
        ));
    }
    bytes.truncate(len);
    Ok(bytes)
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use std::io;

    use super::{requests, GeneralRegs};

    /// `user_regs_struct` has 27 eight-byte fields.
    pub(super) const WORDS: usize = 27;

    const RAX: usize = 10;
    const RCX: usize = 11;
    const RDX: usize = 12;
    const RSI: usize = 13;
    const RDI: usize = 14;
    const ORIG_RAX: usize = 15;
    const RIP: usize = 16;
    const EFLAGS: usize = 18;
    const RSP: usize = 19;
    const R8: usize = 9;
    const R9: usize = 8;
    const R10: usize = 7;

    /// The trap flag and the direction flag: a call must start with both
    /// clear (the ABI requires DF = 0).
    const TF_DF: u64 = 0x100 | 0x400;

    /// `NT_X86_XSTATE`: the XSAVE area.
    const NT_X86_XSTATE: u32 = 0x202;

    /// The extended register sets to save: the XSAVE area, or the FXSAVE
    /// area where the kernel cannot report XSAVE state. One is required.
    pub(super) const EXTRA_SETS: &[(&[u32], bool)] =
        &[(&[NT_X86_XSTATE, requests::NT_PRFPREG], true)];

    /// The System V ABI's red zone: 128 bytes below the stack pointer that
    /// a leaf function may use without moving it.
    pub(crate) const RED_ZONE: u64 = 128;

    /// `mmap`.
    pub(crate) const SYS_MMAP: u64 = 9;
    /// `munmap`.
    pub(crate) const SYS_MUNMAP: u64 = 11;

    /// The scratch code: `syscall; int3` at offset 0 and `call *%rax; int3`
    /// at offset 3, padded with `nop`s.
    pub(crate) const SCRATCH_CODE: [u8; 8] = [0x0f, 0x05, 0xcc, 0xff, 0xd0, 0xcc, 0x90, 0x90];
    /// Where the system-call sequence starts.
    pub(crate) const SYSCALL_OFFSET: u64 = 0;
    /// Where the program counter is once the system call has trapped.
    pub(crate) const SYSCALL_TRAP_OFFSET: u64 = 3;
    /// Where the call sequence starts.
    pub(crate) const CALL_OFFSET: u64 = 3;
    /// Where the program counter is once the called function has returned
    /// and trapped.
    pub(crate) const CALL_TRAP_OFFSET: u64 = 6;

    /// The breakpoint instruction (`int3`).
    pub(crate) const BREAKPOINT: &[u8] = &[0xcc];
    /// The `si_code` of the `SIGTRAP` a breakpoint raises (`SI_KERNEL`).
    pub(crate) const BREAKPOINT_SI_CODE: i32 = 0x80;

    /// The program counter of a thread that trapped on a breakpoint at
    /// `address` (x86 reports the address after the `int3`).
    pub(crate) fn breakpoint_trap_pc(address: u64) -> u64 {
        address + 1
    }

    impl GeneralRegs {
        /// The program counter.
        pub(crate) fn pc(&self) -> u64 {
            self.words[RIP]
        }

        /// Sets the program counter.
        pub(crate) fn set_pc(&mut self, pc: u64) {
            self.words[RIP] = pc;
        }

        /// The stack pointer.
        pub(crate) fn sp(&self) -> u64 {
            self.words[RSP]
        }

        /// Whether the thread stopped inside a system call (which the kernel
        /// restarts when the thread resumes with these registers).
        #[cfg(test)]
        pub(crate) fn in_syscall(&self) -> bool {
            (self.words[ORIG_RAX] as i64) >= 0
        }

        /// The return value of a system call or function call.
        pub(crate) fn return_value(&self) -> u64 {
            self.words[RAX]
        }

        /// The system call the thread made last (or is inside of), if any.
        #[cfg(test)]
        pub(crate) fn syscall_number(&self) -> Option<u64> {
            self.in_syscall().then_some(self.words[ORIG_RAX])
        }

        fn prepare(&mut self) {
            // Not inside a system call any more: the kernel must not
            // "restart" one on top of our code.
            self.words[ORIG_RAX] = u64::MAX;
            self.words[EFLAGS] &= !TF_DF;
        }

        /// Sets up system call `number` with `args`, to run at `pc`.
        pub(crate) fn set_syscall(&mut self, pc: u64, number: u64, args: [u64; 6]) {
            self.prepare();
            self.words[RAX] = number;
            for (index, value) in [RDI, RSI, RDX, R10, R8, R9].into_iter().zip(args) {
                self.words[index] = value;
            }
            self.words[RIP] = pc;
        }

        /// Sets up a call of `function` with up to six integer `args` on the
        /// stack at `sp` (16-byte aligned), through the call instruction at
        /// `pc`.
        pub(crate) fn set_call(&mut self, pc: u64, function: u64, args: &[u64], sp: u64) {
            self.prepare();
            for (index, value) in [RDI, RSI, RDX, RCX, R8, R9]
                .into_iter()
                .zip(args.iter().copied())
            {
                self.words[index] = value;
            }
            self.words[RAX] = function;
            self.words[RSP] = sp;
            self.words[RIP] = pc;
        }

        /// Writes these registers to start a call or system call in stopped
        /// thread `tid` (on x86-64 everything is in the general registers).
        pub(crate) fn write_for_call(&self, tid: u32) -> io::Result<()> {
            self.write(tid)
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use std::io;

    use super::{requests, GeneralRegs};

    /// `user_pt_regs`: x0-x30, sp, pc, pstate.
    pub(super) const WORDS: usize = 34;

    const X8: usize = 8;
    const LR: usize = 30;
    const SP: usize = 31;
    const PC: usize = 32;

    /// `NT_ARM_SYSTEM_CALL`: the number of the interrupted system call (-1
    /// when none), which decides whether the kernel restarts it.
    const NT_ARM_SYSTEM_CALL: u32 = 0x404;
    /// `NT_ARM_SVE`: the scalable vector state, where the CPU has it.
    const NT_ARM_SVE: u32 = 0x405;

    /// FP/SIMD state is required; SVE state and the system-call number are
    /// saved when the kernel reports them.
    pub(super) const EXTRA_SETS: &[(&[u32], bool)] = &[
        (&[requests::NT_PRFPREG], true),
        (&[NT_ARM_SVE], false),
        (&[NT_ARM_SYSTEM_CALL], false),
    ];

    /// AAPCS64 has no red zone.
    pub(crate) const RED_ZONE: u64 = 0;

    /// `mmap`.
    pub(crate) const SYS_MMAP: u64 = 222;
    /// `munmap`.
    pub(crate) const SYS_MUNMAP: u64 = 215;

    /// `svc #0; brk #0; brk #0`: the system call at offset 0 traps at 4;
    /// a called function returns (through `lr`) to the `brk` at 8.
    pub(crate) const SCRATCH_CODE: [u8; 12] = [
        0x01, 0x00, 0x00, 0xd4, // svc #0
        0x00, 0x00, 0x20, 0xd4, // brk #0
        0x00, 0x00, 0x20, 0xd4, // brk #0
    ];
    /// Where the system-call sequence starts.
    pub(crate) const SYSCALL_OFFSET: u64 = 0;
    /// Where the program counter is once the system call has trapped.
    pub(crate) const SYSCALL_TRAP_OFFSET: u64 = 4;
    /// Where a called function returns to (there is no call instruction:
    /// the program counter is set to the function).
    pub(crate) const CALL_OFFSET: u64 = 8;
    /// Where the program counter is once the called function has returned
    /// and trapped.
    pub(crate) const CALL_TRAP_OFFSET: u64 = 8;

    /// The breakpoint instruction (`brk #0`).
    pub(crate) const BREAKPOINT: &[u8] = &[0x00, 0x00, 0x20, 0xd4];
    /// The `si_code` of the `SIGTRAP` a breakpoint raises (`TRAP_BRKPT`).
    pub(crate) const BREAKPOINT_SI_CODE: i32 = 1;

    /// The program counter of a thread that trapped on a breakpoint at
    /// `address` (aarch64 reports the address of the `brk` itself).
    pub(crate) fn breakpoint_trap_pc(address: u64) -> u64 {
        address
    }

    impl GeneralRegs {
        /// The program counter.
        pub(crate) fn pc(&self) -> u64 {
            self.words[PC]
        }

        /// Sets the program counter.
        pub(crate) fn set_pc(&mut self, pc: u64) {
            self.words[PC] = pc;
        }

        /// The stack pointer.
        pub(crate) fn sp(&self) -> u64 {
            self.words[SP]
        }

        /// The return value of a system call or function call.
        pub(crate) fn return_value(&self) -> u64 {
            self.words[0]
        }

        /// Sets up system call `number` with `args`, to run at `pc`.
        pub(crate) fn set_syscall(&mut self, pc: u64, number: u64, args: [u64; 6]) {
            self.words[..6].copy_from_slice(&args);
            self.words[X8] = number;
            self.words[PC] = pc;
        }

        /// Sets up a call of `function` with up to eight integer `args` on
        /// the stack at `sp` (16-byte aligned), returning to `return_to`.
        pub(crate) fn set_call(&mut self, return_to: u64, function: u64, args: &[u64], sp: u64) {
            for (slot, value) in self.words[..8].iter_mut().zip(args.iter().copied()) {
                *slot = value;
            }
            self.words[LR] = return_to;
            self.words[SP] = sp;
            self.words[PC] = function;
        }

        /// Writes these registers to start a call or system call in stopped
        /// thread `tid`, and tells the kernel the thread is no longer inside
        /// a system call so that it restarts none on top of our code.
        pub(crate) fn write_for_call(&self, tid: u32) -> io::Result<()> {
            self.write(tid)?;
            match requests::set_regset(tid, NT_ARM_SYSTEM_CALL, &(-1i32).to_ne_bytes()) {
                Ok(()) => Ok(()),
                // Kernels before 3.19 lack the set; nothing to cancel there.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_offsets_lie_inside_the_scratch_code() {
        let len = SCRATCH_CODE.len() as u64;
        for offset in [
            SYSCALL_OFFSET,
            SYSCALL_TRAP_OFFSET,
            CALL_OFFSET,
            CALL_TRAP_OFFSET,
        ] {
            assert!(offset < len);
        }
        assert!(!BREAKPOINT.is_empty());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_call_setup_cancels_syscall_restart_and_clears_flags() {
        let mut regs = GeneralRegs { words: [0; WORDS] };
        regs.words[15] = 35; // orig_rax: inside nanosleep
        regs.words[18] = 0x746; // eflags with DF and TF set
        assert!(regs.in_syscall());
        regs.set_call(0x1003, 0xdead_beef, &[1, 2, 3], 0x7000);
        assert!(!regs.in_syscall());
        assert_eq!(regs.words[18] & 0x500, 0);
        assert_eq!(
            (regs.pc(), regs.sp(), regs.words[10]),
            (0x1003, 0x7000, 0xdead_beef)
        );
        assert_eq!((regs.words[14], regs.words[13], regs.words[12]), (1, 2, 3));
        regs.set_syscall(0x1000, SYS_MUNMAP, [0x5000, 4096, 0, 0, 0, 0]);
        assert_eq!(
            (regs.words[10], regs.words[14], regs.words[13]),
            (SYS_MUNMAP, 0x5000, 4096)
        );
        assert_eq!(breakpoint_trap_pc(0x40), 0x41);
    }
}
