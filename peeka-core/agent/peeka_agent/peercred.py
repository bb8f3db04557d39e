"""Who is on the other end of a Unix socket, and whether the agent serves them.

The private directory (mode 0700) already keeps other users away from the
socket; the agent checks the peer's credentials on every connection anyway,
as the kernel reports them (``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on
macOS and the BSDs), so that a directory with wrong permissions cannot open
the target to other users.

Admission rule (:func:`admits`): the peer's uid is 0 (root), or it equals the
target's uid, the target's real and effective uids being equal. A process
whose real and effective uids differ (a set-uid program, or one that changed
only its effective uid) is served to root alone, because letting either uid
in would let one user look into a process running with another user's
rights; this mirrors the kernel's own rule for ptrace.

When the credentials cannot be read the connection is refused: the check
fails closed.
"""

import collections
import os
import socket
import sys

PeerCredentials = collections.namedtuple("PeerCredentials", "pid uid gid")
PeerCredentials.__doc__ = "The peer's pid (None where unknown), uid and gid."

# struct ucred { pid_t pid; uid_t uid; gid_t gid; } on Linux: three 32-bit ints.
_UCRED_SIZE = 12
# struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
_XUCRED_SIZE = 76
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001


def _int32(data, offset, signed):
    return int.from_bytes(data[offset : offset + 4], sys.byteorder, signed=signed)


def peer_credentials(sock):
    """The PeerCredentials of a connected Unix socket; raises OSError if unavailable."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is not None:
        data = sock.getsockopt(socket.SOL_SOCKET, so_peercred, _UCRED_SIZE)
        if len(data) < _UCRED_SIZE:
            raise OSError("SO_PEERCRED returned %d bytes instead of %d" % (len(data), _UCRED_SIZE))
        return PeerCredentials(
            _int32(data, 0, True), _int32(data, 4, False), _int32(data, 8, False)
        )
    if sys.platform == "darwin" or "bsd" in sys.platform:
        data = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
        if len(data) < 12:
            raise OSError("LOCAL_PEERCRED returned %d bytes" % len(data))
        uid = _int32(data, 4, False)
        groups = int.from_bytes(data[8:10], sys.byteorder, signed=True)
        gid = _int32(data, 12, False) if groups > 0 and len(data) >= 16 else -1
        return PeerCredentials(None, uid, gid)
    raise OSError("this platform offers no way to read a Unix socket peer's credentials")


def admits(uid):
    """Whether a peer with ``uid`` may use the agent (see the module documentation)."""
    if uid == 0:
        return True
    real = os.getuid()
    return uid == real and real == os.geteuid()


def describe_refusal(credentials):
    """A one-line reason for refusing ``credentials``, for the agent's log."""
    return "refused a connection from uid %d (pid %s): only root and uid %d may use this agent" % (
        credentials.uid,
        credentials.pid,
        os.getuid(),
    )
