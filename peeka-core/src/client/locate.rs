//! Where a target's agent listens, as this process reaches it.
//!
//! The agent's socket is `agent.sock` in the private directory
//! `/tmp/peeka-<pid in the target's namespace>` of the target's own
//! filesystem; the client reaches it through `/proc/PID/root`, so targets in
//! containers and chroots work the same.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peeka_attach::procfs::ProcStatus;
use peeka_attach::Staging;

use super::error::ClientError;

/// The socket's name inside the private directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// The private directory of process `pid` as the target sees it, and its
/// socket as this process reaches it.
///
/// # Errors
/// [`ClientError::NoSuchProcess`], or [`ClientError::Io`] when
/// `/proc/PID/status` cannot be read.
pub fn agent_paths(pid: u32) -> Result<(PathBuf, PathBuf), ClientError> {
    let status = match ProcStatus::read(pid) {
        Ok(status) => status,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ClientError::NoSuchProcess { pid })
        }
        Err(source) => {
            return Err(ClientError::Io {
                what: format!("reading /proc/{pid}/status"),
                source,
            })
        }
    };
    let ns_pid = status.ns_pid.last().copied().unwrap_or(pid);
    let private_dir = Staging::target_dir_for_ns_pid(ns_pid);
    let socket = peeka_attach::elf::path_in_root(pid, &private_dir.join(SOCKET_NAME));
    Ok((private_dir, socket))
}

/// The agent socket of process `pid`, as this process reaches it (whether
/// or not an agent is there).
///
/// # Errors
/// As [`agent_paths`].
pub fn socket_path(pid: u32) -> Result<PathBuf, ClientError> {
    agent_paths(pid).map(|(_, socket)| socket)
}

/// Checks, before anything is sent, that the listener at the other end of
/// `socket` (connected by the name `path`) is process `pid` itself. The
/// private directory belongs to the target's user, who may have replaced
/// the socket's name with a link to another socket (a root-only daemon's,
/// when root attaches). Where peer credentials cannot be read (not Linux),
/// the check is skipped.
///
/// # Errors
/// [`ClientError::Connect`] naming the process that does listen there.
pub(crate) fn check_listener(
    socket: BorrowedFd<'_>,
    pid: u32,
    path: &Path,
) -> Result<(), ClientError> {
    let refused = |source| ClientError::Connect {
        pid,
        socket: path.to_path_buf(),
        source,
    };
    match peeka_attach::peer_credentials::socket_peer(socket) {
        Ok(peer) if peer.pid == pid => Ok(()),
        Ok(peer) => Err(refused(io::Error::other(format!(
            "the socket's listener is process {} (uid {}), not process {pid}, so it is not \
             that process's agent (another user may have planted it); nothing was sent to it",
            peer.pid, peer.uid
        )))),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        Err(source) => Err(refused(source)),
    }
}

/// Whether process `pid` still exists.
pub(crate) fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Why the agent's connection of process `pid` ended cleanly, and what to do.
pub(crate) fn closed_detail(pid: u32) -> String {
    if process_exists(pid) {
        format!("the agent closed the connection (it was detached, perhaps by another client); attach again to continue: `peeka-cli attach {pid}`")
    } else {
        format!("process {pid} exited")
    }
}

/// Waits up to `within` for the directory holding `socket` to disappear;
/// whether it did.
pub(crate) fn wait_removed(socket: &Path, within: Duration) -> bool {
    let Some(dir) = socket.parent() else {
        return true;
    };
    let deadline = Instant::now() + within;
    loop {
        if !dir.exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long a client waits for the agent to remove its directory after
/// `detach` answered.
pub(crate) const DETACH_CLEANUP_WAIT: Duration = Duration::from_secs(3);
