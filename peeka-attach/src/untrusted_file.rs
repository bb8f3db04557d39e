//! Reading a small file that another user may have planted.
//!
//! Root attaching to a process of user `nobody` reads files in a directory
//! that `nobody` owns (the private directory). Whatever is there may be a
//! link to a file only root may read, a FIFO that blocks a reader forever,
//! a link to `/dev/zero`, or a huge file. [`read_untrusted_at`] opens the
//! name relative to an already checked directory without following a link
//! and without blocking (`openat(dir, name, O_RDONLY|O_NOFOLLOW|O_NONBLOCK|
//! O_CLOEXEC)`), checks what it opened with `fstat` (a regular file owned
//! by the expected uid, no larger than the limit) and reads at most the
//! limit. A file that fails a check is never read, and the error says only
//! what was wrong with it, never what it holds.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use thiserror::Error;

use crate::dir_fd;

/// The most Peeka reads from a file another user can write: 64 KiB.
pub const UNTRUSTED_READ_LIMIT: usize = 64 * 1024;

/// Why a file in a directory another user can write was not read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UntrustedFileError {
    /// Nothing is there (yet).
    #[error("it does not exist")]
    Missing,
    /// A symbolic link, which is never followed.
    #[error("it is a symbolic link, which is never followed")]
    Symlink,
    /// A FIFO, a socket, a device or a directory.
    #[error("it is {kind}, not a regular file")]
    NotRegular {
        /// What it is, in words (e.g. "a FIFO (named pipe)").
        kind: &'static str,
    },
    /// A regular file owned by someone else than expected.
    #[error("it is owned by uid {owner}, not by uid {expected}")]
    WrongOwner {
        /// Its owner.
        owner: u32,
        /// The uid that must own it.
        expected: u32,
    },
    /// Larger than the limit; not read at all.
    #[error("it holds {size} bytes or more, over the limit of {limit}; it was not read")]
    TooLarge {
        /// Its size (at least), in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Opening or reading failed otherwise.
    #[error("it cannot be read: {0}")]
    Io(#[source] io::Error),
}

impl UntrustedFileError {
    /// Whether nothing is there: not written yet, rather than planted.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

/// Reads file `name` of the checked directory `dir`: only if it is a
/// regular file (not a link, FIFO, socket or device) owned by `owner`, and
/// at most `limit` bytes long.
///
/// # Errors
/// [`UntrustedFileError`], saying what was wrong and nothing of the content.
pub fn read_untrusted_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    owner: u32,
    limit: usize,
) -> Result<Vec<u8>, UntrustedFileError> {
    let name = dir_fd::component(name).map_err(UntrustedFileError::Io)?;
    let fd = dir_fd::open_read_at(dir, &name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => UntrustedFileError::Missing,
        // O_NOFOLLOW on a link: ELOOP on Linux, EMLINK on the BSDs.
        Some(libc::ELOOP | libc::EMLINK) => UntrustedFileError::Symlink,
        // A UNIX socket cannot be opened at all.
        Some(libc::ENXIO) => UntrustedFileError::NotRegular { kind: "a socket" },
        _ => UntrustedFileError::Io(e),
    })?;
    let stat = dir_fd::fstat(fd.as_fd()).map_err(UntrustedFileError::Io)?;
    if !dir_fd::is_regular(&stat) {
        return Err(UntrustedFileError::NotRegular {
            kind: dir_fd::kind_of(&stat),
        });
    }
    if stat.st_uid != owner {
        return Err(UntrustedFileError::WrongOwner {
            owner: stat.st_uid,
            expected: owner,
        });
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > limit as u64 {
        return Err(UntrustedFileError::TooLarge { size, limit });
    }
    let mut contents = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(limit as u64 + 1)
        .read_to_end(&mut contents)
        .map_err(UntrustedFileError::Io)?;
    if contents.len() > limit {
        // It grew after the check.
        return Err(UntrustedFileError::TooLarge {
            size: contents.len() as u64,
            limit,
        });
    }
    Ok(contents)
}

/// [`read_untrusted_at`] for `path`: its directory is opened by path
/// (following links, so the caller must trust the way to it), and the last
/// component is then checked as [`read_untrusted_at`] does.
///
/// # Errors
/// As [`read_untrusted_at`]; [`UntrustedFileError::Io`] when the directory
/// cannot be opened.
pub fn read_untrusted(
    path: &Path,
    owner: u32,
    limit: usize,
) -> Result<Vec<u8>, UntrustedFileError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(UntrustedFileError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file in a directory", path.display()),
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = dir_fd::open_dir_path(parent).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => UntrustedFileError::Missing,
        _ => UntrustedFileError::Io(e),
    })?;
    read_untrusted_at(dir.as_fd(), name, owner, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "peeka-untrusted-unit-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("scratch directory");
        dir
    }

    #[test]
    fn planted_files_are_refused_without_reading_them() {
        let dir = scratch("planted");
        let me = dir_fd::our_euid();
        std::fs::write(dir.join("ok"), b"{\"state\": \"loaded\"}").unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 100]).unwrap();
        std::fs::write(dir.join("secret"), b"secret").unwrap();
        std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        symlink(dir.join("secret"), dir.join("link")).unwrap();
        symlink("/dev/zero", dir.join("zero")).unwrap();
        let fifo = dir_fd::c_path(&dir.join("fifo")).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        assert_eq!(
            read_untrusted(&dir.join("ok"), me, 64).unwrap(),
            b"{\"state\": \"loaded\"}"
        );
        assert!(matches!(
            read_untrusted(&dir.join("big"), me, 64),
            Err(UntrustedFileError::TooLarge {
                size: 100,
                limit: 64
            })
        ));
        for link in ["link", "zero"] {
            let error = read_untrusted(&dir.join(link), me, 64).unwrap_err();
            assert!(matches!(error, UntrustedFileError::Symlink), "{link}");
            assert!(!error.to_string().contains("secret"));
        }
        assert!(matches!(
            read_untrusted(&dir.join("fifo"), me, 64),
            Err(UntrustedFileError::NotRegular { .. })
        ));
        assert!(matches!(
            read_untrusted(&dir.join("ok"), me.wrapping_add(1), 64),
            Err(UntrustedFileError::WrongOwner { .. })
        ));
        assert!(read_untrusted(&dir.join("absent"), me, 64)
            .unwrap_err()
            .is_missing());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
