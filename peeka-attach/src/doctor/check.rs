/// The process exists, is not a zombie, is not stopped.
pub const PROCESS: &str = "process";
/// It runs CPython (not PyPy, not another program).
pub const CPYTHON: &str = "cpython";
/// Its CPython version is one Peeka supports.
pub const VERSION: &str = "version";
/// The interpreter's machine architecture matches this build's.
pub const ARCHITECTURE: &str = "architecture";
/// Our credentials (uid, gid, the target's dumpable flag) allow ptrace.
pub const PTRACE_PERMISSION: &str = "ptrace_permission";
/// Yama's `kernel.yama.ptrace_scope` allows it.
pub const YAMA: &str = "yama";
/// Whether we hold `CAP_SYS_PTRACE`, and whether it is needed.
pub const CAPABILITIES: &str = "capabilities";
/// Another tracer (debugger, strace) is already attached.
pub const TRACED: &str = "traced";
/// Seccomp filters in the target or in this process.
pub const SECCOMP: &str = "seccomp";
/// Another pid, mount or user namespace, or another root directory.
pub const CONTAINER: &str = "container";
/// PEP 768 remote debugging (3.14+) is enabled.
pub const REMOTE_DEBUG: &str = "remote_debug";
/// The target's `/tmp` can take the agent's private directory.
pub const STAGING: &str = "staging";
/// gdb is installed, for the gdb fallback method (Linux), and can make
/// inferior calls on this host without harming the process (checked on a
/// throwaway process of the doctor's own, never on the target).
pub const GDB: &str = "gdb";
/// lldb is installed, for the lldb method (macOS).
pub const LLDB: &str = "lldb";
/// Which route an attach would take now, and why: PEP 768, the ptrace
/// method's pending call or GIL-released route, or none until a thread
/// runs Python (from one look at the threads; nothing is stopped).
pub const ROUTE: &str = "route";
