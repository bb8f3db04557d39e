//! System calls relative to an open directory (`openat`, `mkdirat`,
//! `unlinkat`, `fstatat`), for working in directories another user can
//! write: once a directory is open and checked, names are looked up in
//! *that* directory, whatever is later renamed or replaced on the way to
//! it, and the last component is never followed when it is a link.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A name for the `*at` calls: one path component, as a C string.
///
/// # Errors
/// `InvalidInput` when `name` is empty, `.` or `..`, holds a `/`, or a NUL.
pub(crate) fn component(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} holds a NUL byte"),
        )
    })
}

/// A whole path as a C string.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} holds a NUL byte", path.display()),
        )
    })
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(rc: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(rc)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens directory `path`, following links on the way (the caller trusts
/// the path up to it).
pub(crate) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    // SAFETY: a valid C string; the flags create nothing.
    owned(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// Opens directory `name` in `dir`, refusing a link (`ELOOP`) and anything
/// that is not a directory (`ENOTDIR`).
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a valid directory fd and C string; the flags create nothing.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Opens file `name` in `dir` for reading without following a link
/// (`ELOOP`) and without blocking (a FIFO opens at once, with no writer).
pub(crate) fn open_read_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a valid directory fd and C string; the flags create nothing.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })
}

/// Creates file `name` in `dir` with `mode`, failing if anything (even a
/// dangling link) is there already.
pub(crate) fn create_new_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a valid directory fd and C string.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

/// Creates directory `name` in `dir` with `mode` (less the umask).
pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: a valid directory fd and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Removes the entry `name` of `dir` that is not a directory (a link is
/// removed itself, never followed).
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid directory fd and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// Removes the empty directory `name` of `dir`.
pub(crate) fn rmdir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid directory fd and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// Renames entry `from` of `dir` to `to` in the same directory (whatever
/// is at `to`, a link included, is replaced, never followed).
pub(crate) fn rename_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: a valid directory fd and C strings.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
        .map(drop)
}

/// `fstat` of an open file.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid out-pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    Ok(stat)
}

/// `fstatat` of entry `name` of `dir`, describing a link itself.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, C string and out-pointer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut stat,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(stat)
}

/// Changes the owner of an open file.
pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// Changes the mode of an open file.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: a valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// The names in directory `dir` (without `.` and `..`), read through a
/// fresh open of the directory itself, so `dir`'s own offset is untouched.
pub(crate) fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fresh = open_dir_at(dir, c".")?;
    // SAFETY: `fresh` is an open directory fd; `fdopendir` takes it over
    // (it is closed by `closedir` below, never by `OwnedFd`).
    let stream = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(fresh)) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: `stream` is a valid, open directory stream. A null entry
        // ends the listing (its only error, EBADF, cannot happen here).
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: a non-null entry from `readdir` holds a NUL-terminated name,
        // valid until the next call on `stream`.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    // SAFETY: `stream` is valid and closed once.
    unsafe { libc::closedir(stream) };
    Ok(names)
}

/// What kind of file a `stat` describes, in words.
pub(crate) fn kind_of(stat: &libc::stat) -> &'static str {
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFIFO => "a FIFO (named pipe)",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "a file of unknown type",
    }
}

/// The device and inode a `stat` describes: the file's identity.
#[allow(clippy::unnecessary_cast)] // `dev_t` and `ino_t` differ between systems
pub(crate) fn identity(stat: &libc::stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

/// The permission bits (and set-id and sticky bits) of a `stat`.
#[allow(clippy::useless_conversion)] // `mode_t` is narrower on some systems
pub(crate) fn mode_bits(stat: &libc::stat) -> u32 {
    u32::from(stat.st_mode) & 0o7777
}

/// Whether a `stat` describes a directory.
pub(crate) fn is_dir(stat: &libc::stat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Whether a `stat` describes a regular file.
pub(crate) fn is_regular(stat: &libc::stat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// The effective uid of this process.
pub(crate) fn our_euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_names_are_components() {
        assert!(component(OsStr::new("status.abc")).is_ok());
        for bad in ["", ".", "..", "a/b", "/etc"] {
            assert!(component(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }
}
