//! Saving and restoring a stopped thread's registers, and setting them up
//! for a trampoline (x86-64).
//!
//! The general-purpose registers are read with `PTRACE_GETREGSET
//! NT_PRSTATUS`. The rest of the thread's register state, which a called
//! function may clobber, is saved as an opaque register set (the whole
//! XSAVE area, AVX, AVX-512 and AMX state included; the legacy FXSAVE area
//! when the kernel has no XSAVE support) and written back byte for byte
//! when a call has to be abandoned. A trampoline that finishes restores the
//! vector state itself (see `trampoline`).

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

    /// Replaces the saved general-purpose registers.
    pub(crate) fn set_general(&mut self, general: GeneralRegs) {
        self.general = general;
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
    use super::{requests, GeneralRegs};

    /// `user_regs_struct` has 27 eight-byte fields.
    pub(super) const WORDS: usize = 27;

    const R14: usize = 1;
    const R12: usize = 3;
    const RBX: usize = 5;
    const R10: usize = 7;
    const R9: usize = 8;
    const R8: usize = 9;
    const RAX: usize = 10;
    const RDX: usize = 12;
    const RSI: usize = 13;
    const RDI: usize = 14;
    const ORIG_RAX: usize = 15;
    const RIP: usize = 16;
    const EFLAGS: usize = 18;
    const RSP: usize = 19;

    /// The trap flag and the direction flag: code we run must start with
    /// both clear (the ABI requires DF = 0).
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

    impl GeneralRegs {
        /// All zero (for tests).
        #[cfg(test)]
        pub(crate) fn zeroed() -> Self {
            Self { words: [0; WORDS] }
        }

        /// All zero: registers whose values do not matter (to build the
        /// fixed part of a trampoline).
        pub(crate) fn default_for_signature() -> Self {
            Self { words: [0; WORDS] }
        }

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

        /// Sets the stack pointer.
        #[cfg(test)]
        pub(crate) fn set_sp(&mut self, sp: u64) {
            self.words[RSP] = sp;
        }

        /// The flags register.
        pub(crate) fn flags(&self) -> u64 {
            self.words[EFLAGS]
        }

        /// The words a trampoline's restore record pops, in order: r15,
        /// r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi,
        /// rdi (the first fifteen of `user_regs_struct`).
        pub(crate) fn restore_words(&self) -> &[u64] {
            &self.words[..=RDI]
        }

        /// Whether the thread stopped inside a system call (which the kernel
        /// restarts when the thread resumes with these registers).
        pub(crate) fn in_syscall(&self) -> bool {
            (self.words[ORIG_RAX] as i64) >= 0
        }

        /// The return value of a system call or function call.
        pub(crate) fn return_value(&self) -> u64 {
            self.words[RAX]
        }

        /// Sets the return-value register.
        pub(crate) fn set_return_value(&mut self, value: u64) {
            self.words[RAX] = value;
        }

        /// The system call the thread made last (or is inside of), if any.
        pub(crate) fn syscall_number(&self) -> Option<u64> {
            self.in_syscall().then_some(self.words[ORIG_RAX])
        }

        /// Sets `orig_rax` (for tests).
        #[cfg(test)]
        pub(crate) fn set_syscall_number(&mut self, number: u64) {
            self.words[ORIG_RAX] = number;
        }

        /// The system-call argument registers (rdi, rsi, rdx, r10, r8, r9).
        pub(crate) fn syscall_args(&self) -> [u64; 6] {
            [RDI, RSI, RDX, R10, R8, R9].map(|index| self.words[index])
        }

        /// Tells the kernel the thread is not inside a system call, so that
        /// it restarts none on top of the code we set up.
        pub(crate) fn leave_syscall(&mut self) {
            self.words[ORIG_RAX] = u64::MAX;
        }

        fn prepare(&mut self, pc: u64) {
            self.leave_syscall();
            self.words[EFLAGS] &= !TF_DF;
            self.words[RIP] = pc;
        }

        /// Sets up system call `number` with `args`, made by the trampoline
        /// at `pc` whose restore record is at `record`.
        pub(crate) fn set_syscall(&mut self, pc: u64, record: u64, number: u64, args: [u64; 6]) {
            self.prepare(pc);
            self.words[RAX] = number;
            for (index, value) in [RDI, RSI, RDX, R10, R8, R9].into_iter().zip(args) {
                self.words[index] = value;
            }
            self.words[RSP] = record;
        }

        /// Sets up a program at `pc`: `rsp` at `call_stack`, `rbx` at the
        /// restore record, `r12` at the vector area, `r14` at the slots.
        pub(crate) fn set_program(
            &mut self,
            pc: u64,
            call_stack: u64,
            record: u64,
            vector: u64,
            slots: u64,
        ) {
            self.prepare(pc);
            self.words[RSP] = call_stack;
            self.words[RBX] = record;
            self.words[R12] = vector;
            self.words[R14] = slots;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_cancel_syscall_restart_and_clear_flags() {
        let mut regs = GeneralRegs::zeroed();
        regs.words[15] = 35; // orig_rax: inside nanosleep
        regs.words[18] = 0x746; // eflags with DF and TF set
        assert!(regs.in_syscall());
        regs.set_program(0x1003, 0x7000, 0x7100, 0x7040, 0x70c0);
        assert!(!regs.in_syscall());
        assert_eq!(regs.flags() & 0x500, 0);
        assert_eq!((regs.pc(), regs.sp()), (0x1003, 0x7000));
        assert_eq!(
            (regs.words[5], regs.words[3], regs.words[1]),
            (0x7100, 0x7040, 0x70c0)
        );
        regs.set_syscall(0x1000, 0x7100, SYS_MUNMAP, [0x5000, 4096, 0, 0, 0, 0]);
        assert_eq!(
            (regs.words[10], regs.words[14], regs.words[13], regs.sp()),
            (SYS_MUNMAP, 0x5000, 4096, 0x7100)
        );
        assert_eq!(regs.syscall_args()[..2], [0x5000, 4096]);
    }
}
