//! The agent's socket name lives in the private directory, which the
//! target's user can write: `agent.sock` there may be a link to another
//! socket (a root-only daemon's, when root attaches). The client checks that
//! the socket's listener is the target process before it sends anything.
//!
//! Here the private directory of a real target holds `agent.sock`, a link
//! to a socket only root can reach, on which this test listens: connecting
//! to the target's agent must fail without a byte reaching that socket.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use peeka_core::client::{ClientError, Session};
use peeka_testkit::{Manifest, TargetProcess};

/// A directory only root may enter, removed when dropped.
struct RootOnlyDir(PathBuf);

impl Drop for RootOnlyDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_socket_planted_in_the_private_directory_gets_nothing() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.12") else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/service.py");
    let process = TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start the target: {e}", python.id));
    let pid = process.pid();

    // A daemon's socket that only root can reach.
    let daemon_dir = RootOnlyDir(PathBuf::from(format!(
        "/var/tmp/peeka-test-daemon-{}",
        std::process::id()
    )));
    let _ = fs::remove_dir_all(&daemon_dir.0);
    fs::create_dir(&daemon_dir.0).unwrap();
    fs::set_permissions(&daemon_dir.0, fs::Permissions::from_mode(0o700)).unwrap();
    let daemon_socket = daemon_dir.0.join("daemon.sock");
    let listener = UnixListener::bind(&daemon_socket).unwrap();
    let (tx, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Ok((mut stream, _)) = listener.accept() {
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer) {
                bytes.extend_from_slice(&buffer[..n]);
            }
        }
        let _ = tx.send(bytes);
    });

    // The target's private directory, as its user could have left it: the
    // agent's socket name is a link to the daemon's socket.
    let private_dir = python.host_path(Path::new(&format!("/tmp/peeka-{pid}")));
    let _ = fs::remove_dir_all(&private_dir);
    fs::create_dir(&private_dir).unwrap();
    fs::set_permissions(&private_dir, fs::Permissions::from_mode(0o700)).unwrap();
    symlink(&daemon_socket, private_dir.join("agent.sock")).unwrap();

    let result = Session::connect(pid);
    let _ = fs::remove_dir_all(&private_dir);
    let sent = received
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    assert!(
        sent.is_empty(),
        "{} bytes were sent to the root-only socket the link pointed to",
        sent.len()
    );
    let error = match result {
        Ok(_) => panic!("connected to the planted socket as if it were the agent"),
        Err(error) => error,
    };
    assert!(
        matches!(&error, ClientError::Connect { source, .. }
            if source.to_string().contains(&format!("not process {pid}"))),
        "{error}"
    );
    eprintln!("{}: refused: {error}", python.id);
    drop(process);
}
