//! Machine code that a hijacked thread runs on its own and that always ends
//! by putting the thread back where it was (x86-64).
//!
//! # The property
//!
//! At every instant of an attach, if the tracer vanished (SIGKILL, OOM
//! kill), the kernel would detach every thread and each would run on from
//! its current registers with no one to help it. So a thread is only ever
//! in one of two states:
//! - its own registers, untouched; or
//! - the registers we set (one `PTRACE_SETREGSET`, atomic for the stopped
//!   thread) to run a trampoline built here, which does its work and then
//!   restores every general-purpose register, the flags and the stack
//!   pointer from a *restore record* on the thread's own stack, and jumps
//!   to the [`Continuation`]: the instruction the thread would have run
//!   next, with an interrupted system call restarted exactly as the kernel
//!   restarts it.
//!
//! No trampoline contains a breakpoint. The tracer follows a trampoline
//! through system-call stops (`PTRACE_SYSCALL`): each ends with a marker
//! system call (`getpid`), which for an untraced thread is a harmless
//! system call like any other. Everything a trampoline needs (the restore
//! record, result slots, the saved vector state) is written before the
//! thread is let go, in memory that stays valid for as long as the thread
//! may run the trampoline: its stack below the red zone, and code in a
//! page nothing else executes.
//!
//! Two shapes:
//! - [`syscall_trampoline`]: one system call, then the restore (used for
//!   `mmap` and `munmap`, so it can live outside the page it maps or
//!   unmaps: in padding of an executable mapping, see `landing`);
//! - [`Program`]: calls of functions of the target with arguments taken
//!   from immediates or result slots, a status slot saying how far it
//!   got, the x87/SSE/AVX/AVX-512 state saved before the first call and
//!   restored after the last (`xsave`/`xrstor`, or `fxsave`/`fxrstor`
//!   without XSAVE), then the marker and the restore.

use super::registers::{GeneralRegs, RED_ZONE};

/// `getpid`: the marker system call that ends every program.
pub(crate) const MARKER_SYSCALL: u64 = 39;

/// The kernel's internal "restart me" results (`-ERESTARTSYS`,
/// `-ERESTARTNOINTR`, `-ERESTARTNOHAND`) and `-ERESTART_RESTARTBLOCK`.
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;
/// `-EINTR`.
const EINTR: i64 = -4;

/// The restore record: the first fifteen words of `user_regs_struct`
/// (r15 ... rdi, in that order), then `eflags`, then `rsp`.
const RECORD_WORDS: usize = 17;

/// Size of the restore record in bytes.
pub(crate) const RECORD_LEN: u64 = RECORD_WORDS as u64 * 8;

/// How many result slots a program has (slot 0 is the status).
pub(crate) const SLOTS: usize = 8;

/// Bytes reserved for the saved vector state: the standard-format XSAVE
/// area up to the AVX-512 components (2688 bytes on every CPU so far),
/// rounded up, 64-byte aligned.
const VECTOR_AREA: u64 = 4096;

/// The XSAVE components a program saves: x87, SSE, AVX, and the three of
/// AVX-512 (never AMX, whose state a thread may not be allowed to hold).
const XSAVE_MASK: u32 = 0xe7;

/// The status slot's value until a program finishes.
pub(crate) const STATUS_RUNNING: u64 = u64::MAX;

/// Where a hijacked thread goes on, computed from the registers it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Continuation {
    regs: GeneralRegs,
}

impl Continuation {
    /// The continuation of a thread stopped with `saved`: the same
    /// registers, except that a system call the kernel would restart on
    /// resume is restarted explicitly (program counter back over the
    /// two-byte `syscall`, its number back in `rax`, its arguments still in
    /// their registers), and `orig_rax` is -1 so that the kernel restarts
    /// nothing on top of it.
    ///
    /// A call that returned `-ERESTART_RESTARTBLOCK` (`nanosleep`,
    /// `clock_nanosleep`, `poll`, a timed `futex` wait) is made again from
    /// its arguments, not through `restart_syscall`: that one resumes from
    /// the thread's restart block, which the calls we make meanwhile may
    /// overwrite (every `nanosleep` resets it). A sleep until an absolute
    /// deadline, as CPython's `time.sleep` makes from 3.11, is then exact;
    /// a relative one starts again (it never ends early).
    pub(crate) fn of(saved: &GeneralRegs) -> Self {
        let mut regs = *saved;
        if let Some(number) = saved.syscall_number() {
            if matches!(
                saved.return_value() as i64,
                ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
            ) {
                regs.set_return_value(number);
                regs.set_pc(saved.pc().wrapping_sub(2));
            }
        }
        regs.leave_syscall();
        Self { regs }
    }

    /// Where the thread goes on if a signal handler ran while it was
    /// ours: a system call the kernel restarts only when no handler runs
    /// (or, for `-ERESTARTSYS`, when the handler asked for it with
    /// `SA_RESTART`, which CPython's handlers never do) returns `-EINTR`
    /// instead, as it would have had the signal come while we were not
    /// there. Other continuations are unchanged.
    pub(crate) fn after_a_handler(saved: &GeneralRegs) -> Self {
        let mut regs = *saved;
        if saved.syscall_number().is_some()
            && matches!(
                saved.return_value() as i64,
                ERESTARTSYS | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
            )
        {
            regs.set_return_value(EINTR as u64);
            regs.leave_syscall();
            return Self { regs };
        }
        Self::of(saved)
    }

    /// The registers to give the thread back.
    pub(crate) fn regs(&self) -> &GeneralRegs {
        &self.regs
    }

    /// The restore record for these registers, as bytes.
    pub(crate) fn record(&self) -> Vec<u8> {
        let mut words = self.regs.restore_words().to_vec();
        words.push(self.regs.flags());
        words.push(self.regs.sp());
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

/// The thread's stack below its red zone, carved into the areas a
/// trampoline uses, from the top down: restore record, result slots,
/// vector-state area, then the stack the called functions run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StackFrame {
    /// The restore record (16-byte aligned).
    pub(crate) record: u64,
    /// The result slots.
    pub(crate) slots: u64,
    /// The vector-state area (64-byte aligned).
    pub(crate) vector: u64,
    /// The stack pointer the called functions start with (16-byte aligned).
    pub(crate) call_stack: u64,
}

impl StackFrame {
    /// The frame below the stack pointer `sp` of the interrupted code.
    pub(crate) fn below(sp: u64) -> Self {
        let top = sp.saturating_sub(RED_ZONE) & !63;
        let record = (top - RECORD_LEN) & !15;
        let slots = (record - SLOTS as u64 * 8) & !15;
        let vector = (slots - VECTOR_AREA) & !63;
        let call_stack = (vector - 64) & !15;
        Self {
            record,
            slots,
            vector,
            call_stack,
        }
    }

    /// The address of result slot `index`.
    #[cfg(test)]
    pub(crate) fn slot(&self, index: usize) -> u64 {
        self.slots + index as u64 * 8
    }
}

/// A register that holds an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Rcx = 1,
    Rdx = 2,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
}

/// The System V argument registers, in order.
const ARGUMENT_REGS: [Reg; 6] = [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::Rcx, Reg::R8, Reg::R9];

/// The register a program keeps the slots' address in (callee-saved).
const SLOTS_BASE: u8 = 14; // r14

/// An argument of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A value known when the program is built.
    Value(u64),
    /// The value in result slot `n` (set by an earlier call).
    Slot(usize),
    /// The address of result slot `n` (an out-parameter).
    SlotAddress(usize),
}

/// When a call ends the program early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopIf {
    /// Never.
    Never,
    /// The call returned a null pointer (or 0 in 64 bits).
    Zero,
    /// The call returned a non-zero C `int`.
    NonZeroInt,
}

/// One call of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// The function's address in the target.
    pub(crate) function: u64,
    /// Up to six integer arguments.
    pub(crate) args: Vec<Arg>,
    /// The slot its result goes to.
    pub(crate) result: Option<usize>,
    /// Whether the rest is skipped, depending on the result.
    pub(crate) stop_if: StopIf,
}

/// How a program saves the vector registers its calls may clobber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VectorSave {
    /// `xsave64`/`xrstor64` of x87, SSE, AVX and AVX-512 state.
    Xsave,
    /// `fxsave64`/`fxrstor64` (x87 and SSE), for CPUs without XSAVE.
    Fxsave,
}

impl VectorSave {
    /// What this CPU (the target's too: same machine) supports.
    pub(crate) fn detect() -> Self {
        if std::arch::is_x86_feature_detected!("xsave") {
            Self::Xsave
        } else {
            Self::Fxsave
        }
    }
}

/// A program: calls run in order by a hijacked thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    /// The calls.
    pub(crate) calls: Vec<Call>,
}

/// A program's code, assembled for one address and one continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// The machine code.
    pub(crate) code: Vec<u8>,
    /// Where the program counter is at the marker's system-call stops.
    pub(crate) marker_pc: u64,
}

/// The status a program leaves in slot 0 when call `index` (0-based)
/// stopped it.
pub(crate) fn stopped_at(index: usize) -> u64 {
    index as u64 + 1
}

impl Program {
    /// Assembles the program to run at `address`, going on at
    /// `continuation` when done. The thread must enter it with `rsp` at the
    /// frame's call stack, `rbx` at the restore record, `r12` at the vector
    /// area (its XSAVE header zeroed), `r14` at the slots, and the
    /// direction and trap flags clear.
    pub(crate) fn assemble(
        &self,
        address: u64,
        continuation: &Continuation,
        vector: VectorSave,
    ) -> Assembled {
        let mut asm = Assembler::default();
        asm.vector_state(vector, true);
        let mut exits = Vec::new();
        for (index, call) in self.calls.iter().enumerate() {
            for (arg, reg) in call.args.iter().zip(ARGUMENT_REGS) {
                match *arg {
                    Arg::Value(value) => asm.mov_imm64(reg as u8, value),
                    Arg::Slot(slot) => asm.slot_op(0x8b, reg as u8, slot),
                    Arg::SlotAddress(slot) => asm.slot_op(0x8d, reg as u8, slot),
                }
            }
            asm.mov_imm64(0, call.function); // rax
            asm.bytes(&[0xff, 0xd0]); // call rax
            if let Some(slot) = call.result {
                asm.slot_op(0x89, 0, slot); // mov [r14+slot], rax
            }
            let test: &[u8] = match call.stop_if {
                StopIf::Never => continue,
                StopIf::Zero => &[0x48, 0x85, 0xc0], // test rax, rax
                StopIf::NonZeroInt => &[0x85, 0xc0], // test eax, eax
            };
            // Skip the exit unless the condition holds.
            asm.bytes(test);
            let jump = if call.stop_if == StopIf::Zero {
                0x85 // jnz: not zero, carry on
            } else {
                0x84 // jz: zero, carry on
            };
            let skip = asm.jcc(jump);
            asm.store_status(stopped_at(index));
            exits.push(asm.jmp());
            asm.bind(skip);
        }
        asm.store_status(0);
        for exit in exits {
            asm.bind(exit);
        }
        asm.vector_state(vector, false);
        asm.bytes(&[0xb8]); // mov eax, MARKER_SYSCALL
        asm.bytes(&(MARKER_SYSCALL as u32).to_le_bytes());
        asm.bytes(&[0x0f, 0x05]); // syscall
        let marker_pc = address + asm.code.len() as u64;
        asm.bytes(&[0x48, 0x89, 0xdc]); // mov rsp, rbx
        asm.restore_and_go(continuation);
        Assembled {
            code: asm.code,
            marker_pc,
        }
    }
}

/// One system call, then the restore: enter with the call's number and
/// arguments in their registers and `rsp` at the restore record. Returns
/// the code; the system-call stops have the program counter 2 bytes after
/// its start.
pub(crate) fn syscall_trampoline(continuation: &Continuation) -> Vec<u8> {
    let mut asm = Assembler::default();
    asm.bytes(&[0x0f, 0x05]);
    asm.restore_and_go(continuation);
    asm.code
}

/// Where the program counter is at the system-call stops of a
/// [`syscall_trampoline`] placed at `address`.
pub(crate) fn syscall_trampoline_pc(address: u64) -> u64 {
    address + 2
}

/// Whether `bytes` hold a [`syscall_trampoline`] (for any continuation):
/// one left in padding by a tracer that died before it could put the
/// padding back.
pub(crate) fn is_syscall_trampoline(bytes: &[u8]) -> bool {
    let mut asm = Assembler::default();
    asm.bytes(&[0x0f, 0x05]);
    asm.restore_and_go(&Continuation {
        regs: GeneralRegs::default_for_signature(),
    });
    let fixed = &asm.code[..asm.code.len() - 8];
    bytes.len() >= asm.code.len() && bytes.starts_with(fixed)
}

/// The longest [`syscall_trampoline`].
pub(crate) const SYSCALL_TRAMPOLINE_LEN: usize = 2 + 25 + 6 + 8;

#[derive(Debug, Default)]
struct Assembler {
    code: Vec<u8>,
}

/// A forward jump waiting for its target.
#[derive(Debug, Clone, Copy)]
struct Fixup(usize);

impl Assembler {
    fn bytes(&mut self, bytes: &[u8]) {
        self.code.extend_from_slice(bytes);
    }

    /// `mov reg, imm64`.
    fn mov_imm64(&mut self, reg: u8, value: u64) {
        let rex = 0x48 | u8::from(reg >= 8);
        self.bytes(&[rex, 0xb8 + (reg & 7)]);
        self.bytes(&value.to_le_bytes());
    }

    /// `op reg, [r14 + 8*slot]` for `mov` (0x8b), `lea` (0x8d), or
    /// `mov [r14 + 8*slot], reg` (0x89).
    fn slot_op(&mut self, opcode: u8, reg: u8, slot: usize) {
        let rex = 0x48 | (u8::from(reg >= 8) << 2) | u8::from(SLOTS_BASE >= 8);
        let modrm = 0x80 | ((reg & 7) << 3) | (SLOTS_BASE & 7);
        self.bytes(&[rex, opcode, modrm]);
        self.bytes(&((slot * 8) as i32).to_le_bytes());
    }

    /// `mov qword [r14], imm32` (slot 0: the status).
    fn store_status(&mut self, value: u64) {
        self.bytes(&[0x49, 0xc7, 0x86]);
        self.bytes(&0i32.to_le_bytes());
        self.bytes(&(value as u32).to_le_bytes());
    }

    /// A conditional jump (`0x0f opcode rel32`) to bind later.
    fn jcc(&mut self, opcode: u8) -> Fixup {
        self.bytes(&[0x0f, opcode, 0, 0, 0, 0]);
        Fixup(self.code.len())
    }

    /// A jump (`jmp rel32`) to bind later.
    fn jmp(&mut self) -> Fixup {
        self.bytes(&[0xe9, 0, 0, 0, 0]);
        Fixup(self.code.len())
    }

    /// Makes `fixup` jump here.
    fn bind(&mut self, fixup: Fixup) {
        let relative = (self.code.len() - fixup.0) as i32;
        self.code[fixup.0 - 4..fixup.0].copy_from_slice(&relative.to_le_bytes());
    }

    /// Saves (`save`) or restores the vector state at `[r12]`.
    fn vector_state(&mut self, vector: VectorSave, save: bool) {
        match vector {
            VectorSave::Xsave => {
                self.bytes(&[0xb8]); // mov eax, mask
                self.bytes(&XSAVE_MASK.to_le_bytes());
                self.bytes(&[0x31, 0xd2]); // xor edx, edx
                let modrm = if save { 0x24 } else { 0x2c }; // /4 xsave, /5 xrstor
                self.bytes(&[0x49, 0x0f, 0xae, modrm, 0x24]);
            }
            VectorSave::Fxsave => {
                let modrm = if save { 0x04 } else { 0x0c }; // /0 fxsave, /1 fxrstor
                self.bytes(&[0x49, 0x0f, 0xae, modrm, 0x24]);
            }
        }
    }

    /// Pops the restore record (rsp at it) and jumps to the continuation.
    fn restore_and_go(&mut self, continuation: &Continuation) {
        // r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
        self.bytes(&[
            0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0x41, 0x5b, 0x41, 0x5a,
            0x41, 0x59, 0x41, 0x58, 0x58, 0x59, 0x5a, 0x5e, 0x5f,
        ]);
        self.bytes(&[0x9d, 0x5c]); // popfq; pop rsp
        self.bytes(&[0xff, 0x25, 0, 0, 0, 0]); // jmp [rip+0]
        self.bytes(&continuation.regs.pc().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(pc: u64, rax: i64, orig_rax: i64) -> GeneralRegs {
        let mut regs = GeneralRegs::zeroed();
        regs.set_pc(pc);
        regs.set_return_value(rax as u64);
        regs.set_syscall_number(orig_rax as u64);
        regs
    }

    #[test]
    fn continuations_restart_what_the_kernel_would_restart() {
        let select = Continuation::of(&regs(0x1002, ERESTARTNOHAND, 23));
        assert_eq!(select.regs().pc(), 0x1000);
        assert_eq!(select.regs().return_value(), 23);
        assert_eq!(select.regs().syscall_number(), None);

        // Made again from its arguments, not through restart_syscall.
        let sleep = Continuation::of(&regs(0x2002, ERESTART_RESTARTBLOCK, 230));
        assert_eq!(
            (sleep.regs().pc(), sleep.regs().return_value()),
            (0x2000, 230)
        );

        // epoll_wait's -EINTR is not restarted by the kernel either.
        let eintr = Continuation::of(&regs(0x3002, -4, 232));
        assert_eq!(
            (eintr.regs().pc(), eintr.regs().return_value() as i64),
            (0x3002, -4)
        );

        // A handler ran meanwhile: the kernel would have said EINTR.
        let handled = Continuation::after_a_handler(&regs(0x1002, ERESTARTNOHAND, 23));
        assert_eq!(
            (handled.regs().pc(), handled.regs().return_value() as i64),
            (0x1002, EINTR)
        );
        let no_intr = Continuation::after_a_handler(&regs(0x1002, ERESTARTNOINTR, 23));
        assert_eq!(no_intr.regs().pc(), 0x1000);

        // Running user code: unchanged.
        let busy = Continuation::of(&regs(0x4000, 7, -1));
        assert_eq!((busy.regs().pc(), busy.regs().return_value()), (0x4000, 7));
    }

    #[test]
    fn the_record_holds_the_registers_in_pop_order() {
        let mut saved = regs(0x5000, 0, -1);
        saved.set_sp(0x7fff_0000);
        let record = Continuation::of(&saved).record();
        assert_eq!(record.len() as u64, RECORD_LEN);
        let word = |i: usize| u64::from_ne_bytes(record[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!(word(16), 0x7fff_0000);
    }

    #[test]
    fn frames_stay_below_the_red_zone_and_aligned() {
        let frame = StackFrame::below(0x7fff_1234_5678);
        assert!(frame.record + RECORD_LEN <= 0x7fff_1234_5678 - RED_ZONE);
        assert_eq!(frame.record % 16, 0);
        assert!(frame.slot(SLOTS - 1) + 8 <= frame.record);
        assert_eq!(frame.vector % 64, 0);
        assert!(frame.vector + VECTOR_AREA <= frame.slots);
        assert_eq!(frame.call_stack % 16, 0);
        assert!(frame.call_stack < frame.vector);
    }

    #[test]
    fn the_syscall_trampoline_is_short_and_ends_in_the_continuation() {
        let code = syscall_trampoline(&Continuation::of(&regs(0xdead_beef, 0, -1)));
        assert_eq!(code.len(), SYSCALL_TRAMPOLINE_LEN);
        assert_eq!(&code[..2], &[0x0f, 0x05]);
        assert_eq!(&code[code.len() - 8..], &0xdead_beef_u64.to_le_bytes());
        assert!(!code.contains(&0xcc), "no breakpoint: {code:02x?}");
        assert!(is_syscall_trampoline(&code));
        assert!(!is_syscall_trampoline(&[0; SYSCALL_TRAMPOLINE_LEN]));
    }

    #[test]
    fn programs_assemble_calls_conditions_and_the_marker() {
        let program = Program {
            calls: vec![
                Call {
                    function: 0x1111,
                    args: vec![],
                    result: Some(1),
                    stop_if: StopIf::Zero,
                },
                Call {
                    function: 0x2222,
                    args: vec![Arg::Slot(1), Arg::Value(7), Arg::SlotAddress(3)],
                    result: Some(2),
                    stop_if: StopIf::NonZeroInt,
                },
            ],
        };
        let continuation = Continuation::of(&regs(0x4242, 0, -1));
        let assembled = program.assemble(0x10_000, &continuation, VectorSave::Xsave);
        let code = &assembled.code;
        let offset = (assembled.marker_pc - 0x10_000) as usize;
        assert_eq!(&code[offset - 2..offset], &[0x0f, 0x05]);
        assert_eq!(&code[code.len() - 8..], &0x4242_u64.to_le_bytes());
        // mov rdi, [r14+8]; mov rsi, 7; lea rdx, [r14+24]
        let find = |needle: &[u8]| code.windows(needle.len()).any(|w| w == needle);
        assert!(find(&[0x49, 0x8b, 0xbe, 8, 0, 0, 0]));
        assert!(find(&[0x48, 0xbe, 7, 0, 0, 0, 0, 0, 0, 0]));
        assert!(find(&[0x49, 0x8d, 0x96, 24, 0, 0, 0]));
        // xsave64 [r12] and xrstor64 [r12].
        assert!(find(&[0x49, 0x0f, 0xae, 0x24, 0x24]));
        assert!(find(&[0x49, 0x0f, 0xae, 0x2c, 0x24]));
    }
}
