# Test target for the ptrace method under a seccomp filter: the main thread
# is busy running Python, and a filter installed at start-up refuses the one
# mmap call the ptrace method makes (a private anonymous mapping, readable
# and executable but not writable; CPython's own mappings are writable). Pass "errno" to make the call fail
# with EPERM, "trap" to make it raise SIGSYS. x86-64 only.
import ctypes
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
SYS_MMAP = 9
PROT_READ_EXEC = 5
MAP_PRIVATE_ANONYMOUS = 0x22
ACTIONS = {"errno": 0x00050000 | 1, "trap": 0x00030000}
ALLOW = 0x7FFF0000
LD, JEQ, RET = 0x20, 0x15, 0x06


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


program = [
    (LD, 0, 0, 4),  # arch
    (JEQ, 0, 7, AUDIT_ARCH_X86_64),
    (LD, 0, 0, 0),  # system call number
    (JEQ, 0, 5, SYS_MMAP),
    (LD, 0, 0, 32),  # args[2]: prot
    (JEQ, 0, 3, PROT_READ_EXEC),
    (LD, 0, 0, 40),  # args[3]: flags
    (JEQ, 0, 1, MAP_PRIVATE_ANONYMOUS),
    (RET, 0, 0, ACTIONS[sys.argv[1]]),
    (RET, 0, 0, ALLOW),
]
filters = (SockFilter * len(program))(*[SockFilter(*i) for i in program])
fprog = SockFprog(len(program), filters)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")

print("ready", flush=True)
total = 0
while True:
    for i in range(1000):
        total = (total + i * i) % 1000003
