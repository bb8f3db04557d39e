//! Which process listens at the other end of a connected UNIX socket.
//!
//! The agent's socket lives in the private directory, which the target's
//! user can write: the name `agent.sock` there may be a link to another
//! socket, e.g. a root-only daemon's. A client that connected by that name
//! checks, before it sends anything, that the listener is the target
//! process itself ([`socket_peer`], from `SO_PEERCRED`, which the kernel
//! records when the listener called `listen()`; the pid is given in our pid
//! namespace).

use std::io;
use std::os::fd::BorrowedFd;

/// The credentials of a socket's peer, as the kernel recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id, in our pid namespace (0 if it has none here).
    pub pid: u32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
}

/// The credentials of the peer of the connected UNIX socket `socket`.
///
/// # Errors
/// The error of `getsockopt`; `Unsupported` on systems other than Linux.
#[cfg(target_os = "linux")]
pub fn socket_peer(socket: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    use std::os::fd::AsRawFd;

    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid fd; `credentials` and `length` are valid out-pointers
    // of the size given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(credentials).cast(),
            &mut length,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials {
        pid: u32::try_from(credentials.pid).unwrap_or(0),
        uid: credentials.uid,
        gid: credentials.gid,
    })
}

/// The credentials of the peer of the connected UNIX socket `socket`.
///
/// # Errors
/// `Unsupported` on systems other than Linux.
#[cfg(not(target_os = "linux"))]
pub fn socket_peer(_socket: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are only read on Linux",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_pair_peer_is_ourselves() {
        let (a, _b) = UnixStream::pair().expect("a socket pair");
        let peer = socket_peer(a.as_fd()).expect("peer credentials");
        assert_eq!(peer.pid, std::process::id());
        // SAFETY: geteuid cannot fail.
        assert_eq!(peer.uid, unsafe { libc::geteuid() });
    }
}
