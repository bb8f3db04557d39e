//! The private directory, held open: every file Peeka creates, reads or
//! removes in it is named relative to the directory it checked, never by a
//! path another user could redirect.
//!
//! The directory belongs to the target's uid (the agent runs as that user
//! and must read and write there), so when root attaches to a process of
//! another user, that user can rename, replace or plant anything inside it
//! at any moment. [`PrivateDir`] therefore:
//!
//! - opens the directory that holds it (the target's `/tmp`), creates the
//!   private directory with `mkdirat`, opens it with
//!   `O_DIRECTORY|O_NOFOLLOW` and checks what it opened with `fstat`
//!   (a directory; the one we just made, or an existing one owned by the
//!   target's uid with mode `0700`) before handing it to anyone;
//! - creates files with `openat(O_CREAT|O_EXCL|O_NOFOLLOW)` and changes
//!   their owner through the open file;
//! - reads through [`read_untrusted_at`] (no link followed, no blocking,
//!   a regular file of the target's uid, at most 64 KiB);
//! - removes with `unlinkat` relative to the open directories, descending
//!   only into real directories opened with `O_NOFOLLOW`: a planted link is
//!   removed as a link and never followed, and the directory itself is only
//!   removed from its parent while that name still is the directory we
//!   opened.
//!
//! Holding the directories open has a second use: cleaning up still works
//! after the target exited, when `/proc/PID/root` is gone with it.

use std::ffi::{CString, OsStr};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::bootstrap::StageError;
use crate::dir_fd;
use crate::untrusted_file::{read_untrusted_at, UntrustedFileError};

/// How deep [`PrivateDir::remove_all`] descends; anything deeper was not
/// made by Peeka or its agent and is left in place.
const MAX_REMOVE_DEPTH: usize = 16;

/// A directory owned by the target's uid, open and checked.
#[derive(Debug)]
pub struct PrivateDir {
    /// The directory that holds it.
    parent: OwnedFd,
    /// Its name in `parent`.
    name: CString,
    /// The directory itself.
    dir: OwnedFd,
    /// Its device and inode, to recognise it in `parent` later.
    identity: (u64, u64),
    /// The path it was reached by, for messages.
    path: PathBuf,
    /// The uid that owns it and everything Peeka creates in it.
    uid: u32,
    /// The gid given to what Peeka creates in it.
    gid: u32,
}

impl PrivateDir {
    /// Creates directory `path` with mode `0700` and gives it to `uid` and
    /// `gid`, or opens the existing one if it is exactly that (a real
    /// directory, not a link, owned by `uid`, mode `0700`). The way to its
    /// parent is trusted (e.g. `/proc/PID/root/tmp`); `path` itself is not.
    /// Returns the directory and whether it existed.
    ///
    /// # Errors
    /// [`StageError::Untrusted`] when something else is at `path`,
    /// [`StageError::Io`] when it cannot be created, opened or given away.
    pub fn create_or_reuse(path: &Path, uid: u32, gid: u32) -> Result<(Self, bool), StageError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StageError::Io { path, source }
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io_err(path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory inside another one",
            )));
        };
        let parent_fd = dir_fd::open_dir_path(parent).map_err(io_err(parent))?;
        Self::create_or_reuse_in(parent_fd, path.to_owned(), name, uid, gid)
    }

    /// Opens the existing directory `path` if it is exactly what
    /// [`create_or_reuse`](Self::create_or_reuse) reuses; `None` when
    /// nothing is there. Nothing is created.
    ///
    /// # Errors
    /// As [`create_or_reuse`](Self::create_or_reuse).
    pub fn open_existing(path: &Path, uid: u32, gid: u32) -> Result<Option<Self>, StageError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let parent_fd = match dir_fd::open_dir_path(parent) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StageError::Io {
                    path: parent.to_owned(),
                    source,
                })
            }
        };
        match Self::open_in(parent_fd, path.to_owned(), name, uid, gid, false) {
            Ok((dir, _)) => Ok(Some(dir)),
            Err(StageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// [`create_or_reuse`](Self::create_or_reuse) for `name` inside the
    /// open directory `parent`, which `path` names.
    fn create_or_reuse_in(
        parent: OwnedFd,
        path: PathBuf,
        name: &OsStr,
        uid: u32,
        gid: u32,
    ) -> Result<(Self, bool), StageError> {
        Self::open_in(parent, path, name, uid, gid, true)
    }

    /// Opens (creating it first if `create`) and checks directory `name`
    /// of `parent`; returns it and whether it existed.
    fn open_in(
        parent: OwnedFd,
        path: PathBuf,
        name: &OsStr,
        uid: u32,
        gid: u32,
        create: bool,
    ) -> Result<(Self, bool), StageError> {
        let io_err = |source| StageError::Io {
            path: path.clone(),
            source,
        };
        let c_name = dir_fd::component(name).map_err(io_err)?;
        let created = create
            && match dir_fd::mkdir_at(parent.as_fd(), &c_name, 0o700) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(io_err(e)),
            };
        let untrusted = |parent: &OwnedFd| match dir_fd::lstat_at(parent.as_fd(), &c_name) {
            Ok(stat) => StageError::Untrusted {
                path: path.clone(),
                uid,
                owner: stat.st_uid,
                mode: dir_fd::mode_bits(&stat),
            },
            Err(source) => StageError::Io {
                path: path.clone(),
                source,
            },
        };
        let dir = match dir_fd::open_dir_at(parent.as_fd(), &c_name) {
            Ok(dir) => dir,
            // A link (ELOOP) or not a directory (ENOTDIR).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(untrusted(&parent))
            }
            Err(e) => return Err(io_err(e)),
        };
        let stat = dir_fd::fstat(dir.as_fd()).map_err(io_err)?;
        let mode = dir_fd::mode_bits(&stat);
        let refuse = || StageError::Untrusted {
            path: path.clone(),
            uid,
            owner: stat.st_uid,
            mode,
        };
        if !dir_fd::is_dir(&stat) {
            return Err(refuse());
        }
        if created {
            // What we opened must be what we made: ours, until we give it away.
            if stat.st_uid != dir_fd::our_euid() {
                return Err(refuse());
            }
            dir_fd::fchown(dir.as_fd(), uid, gid).map_err(io_err)?;
            dir_fd::fchmod(dir.as_fd(), 0o700).map_err(io_err)?;
        } else if stat.st_uid != uid || mode != 0o700 {
            return Err(refuse());
        }
        let private = Self {
            parent,
            name: c_name,
            dir,
            identity: dir_fd::identity(&stat),
            path,
            uid,
            gid,
        };
        Ok((private, !created))
    }

    /// The path it was reached by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The uid that owns it.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Writes a new file at `relative` (a relative path without `..`),
    /// mode `0600`, owned by the directory's uid. Directories on the way
    /// are created or reused as [`create_or_reuse`](Self::create_or_reuse)
    /// does; whatever was at the file's name (a file or a link) is removed
    /// first, without following it.
    ///
    /// # Errors
    /// [`StageError`].
    pub fn write_file(&self, relative: &Path, contents: &[u8]) -> Result<(), StageError> {
        let mut names: Vec<&OsStr> = Vec::new();
        for component in relative.components() {
            match component {
                std::path::Component::Normal(name) => names.push(name),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(StageError::BadFileName(
                        relative.to_string_lossy().into_owned(),
                    ))
                }
            }
        }
        let Some((file_name, dirs)) = names.split_last() else {
            return Err(StageError::BadFileName(
                relative.to_string_lossy().into_owned(),
            ));
        };
        let mut subdir: Option<Self> = None;
        for name in dirs {
            let holder = subdir.as_ref().unwrap_or(self);
            let parent = holder.dir.try_clone().map_err(|source| StageError::Io {
                path: holder.path.clone(),
                source,
            })?;
            let (next, _) =
                Self::create_or_reuse_in(parent, holder.path.join(name), name, self.uid, self.gid)?;
            subdir = Some(next);
        }
        let holder = subdir.as_ref().unwrap_or(self);
        holder.write_new(file_name, contents)
    }

    /// Replaces file `name` of this directory whole: writes `.<name>.tmp`
    /// as [`write_file`](Self::write_file) does, then renames it over
    /// `name` (a link there is replaced, never followed).
    ///
    /// # Errors
    /// [`StageError`].
    pub fn replace_file(&self, name: &str, contents: &[u8]) -> Result<(), StageError> {
        let temporary = format!(".{name}.tmp");
        self.write_new(OsStr::new(&temporary), contents)?;
        let io_err = |source| StageError::Io {
            path: self.path.join(name),
            source,
        };
        let from = dir_fd::component(OsStr::new(&temporary)).map_err(io_err)?;
        let to = dir_fd::component(OsStr::new(name)).map_err(io_err)?;
        dir_fd::rename_at(self.dir.as_fd(), &from, &to).map_err(io_err)
    }

    /// Another handle on the same directory (its descriptors duplicated).
    ///
    /// # Errors
    /// The error of duplicating a descriptor.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            parent: self.parent.try_clone()?,
            name: self.name.clone(),
            dir: self.dir.try_clone()?,
            identity: self.identity,
            path: self.path.clone(),
            uid: self.uid,
            gid: self.gid,
        })
    }

    /// Writes file `name` of this directory (see [`write_file`](Self::write_file)).
    fn write_new(&self, name: &OsStr, contents: &[u8]) -> Result<(), StageError> {
        let path = self.path.join(name);
        let io_err = |source| StageError::Io {
            path: path.clone(),
            source,
        };
        let c_name = dir_fd::component(name).map_err(io_err)?;
        match dir_fd::unlink_at(self.dir.as_fd(), &c_name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let fd = dir_fd::create_new_at(self.dir.as_fd(), &c_name, 0o600).map_err(io_err)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents).map_err(io_err)?;
        dir_fd::fchown(file.as_fd(), self.uid, self.gid).map_err(io_err)
    }

    /// Reads file `name` of this directory: only a regular file owned by
    /// the directory's uid, not a link, at most `limit` bytes.
    ///
    /// # Errors
    /// [`UntrustedFileError`], which never holds the file's content.
    pub fn read_file(&self, name: &str, limit: usize) -> Result<Vec<u8>, UntrustedFileError> {
        read_untrusted_at(self.dir.as_fd(), OsStr::new(name), self.uid, limit)
    }

    /// Whether entry `name` is a directory (not a link to one) owned by
    /// the directory's uid.
    pub fn has_subdir(&self, name: &str) -> bool {
        dir_fd::component(OsStr::new(name))
            .and_then(|name| dir_fd::lstat_at(self.dir.as_fd(), &name))
            .is_ok_and(|stat| dir_fd::is_dir(&stat) && stat.st_uid == self.uid)
    }

    /// Removes entry `name` (not a directory) if it is there; a link is
    /// removed itself.
    pub fn remove_file(&self, name: &str) {
        if let Ok(name) = dir_fd::component(OsStr::new(name)) {
            let _ = dir_fd::unlink_at(self.dir.as_fd(), &name);
        }
    }

    /// Removes everything in the directory, then the directory itself (if
    /// its name in the parent still is this directory). Links are removed,
    /// never followed; subdirectories are entered only when they are real
    /// directories, down to a fixed depth.
    ///
    /// # Errors
    /// The first failure; the removal goes on past it as far as it can.
    /// A directory already gone is not a failure.
    pub fn remove_all(&self) -> io::Result<()> {
        // The agent, or an attacker, may add entries while we remove: a
        // few more passes catch what appeared meanwhile.
        let mut passes = 0;
        loop {
            passes += 1;
            let mut first_error = None;
            empty_dir(&self.dir, 0, &mut first_error);
            let removed = match dir_fd::lstat_at(self.parent.as_fd(), &self.name) {
                Ok(stat) if dir_fd::identity(&stat) == self.identity => {
                    dir_fd::rmdir_at(self.parent.as_fd(), &self.name)
                }
                // Renamed away or replaced: that name is not ours any more.
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match removed {
                Ok(()) => return first_error.map_or(Ok(()), Err),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return first_error.map_or(Ok(()), Err)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && passes < 3 => {}
                Err(e) => return Err(first_error.unwrap_or(e)),
            }
        }
    }
}

/// Removes every entry of `dir`, recording the first failure.
fn empty_dir(dir: &OwnedFd, depth: usize, first_error: &mut Option<io::Error>) {
    let names = match dir_fd::list_names(dir.as_fd()) {
        Ok(names) => names,
        Err(e) => {
            first_error.get_or_insert(e);
            return;
        }
    };
    for name in names {
        let result = match dir_fd::lstat_at(dir.as_fd(), &name) {
            Ok(stat) if dir_fd::is_dir(&stat) => remove_subdir(dir, &name, depth, first_error),
            Ok(_) => dir_fd::unlink_at(dir.as_fd(), &name),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
}

/// Empties and removes subdirectory `name` of `dir`, opened without
/// following a link; a link that replaced it meanwhile is removed as a link.
fn remove_subdir(
    dir: &OwnedFd,
    name: &CString,
    depth: usize,
    first_error: &mut Option<io::Error>,
) -> io::Result<()> {
    if depth + 1 >= MAX_REMOVE_DEPTH {
        return Err(io::Error::other(format!(
            "{:?} is nested deeper than {MAX_REMOVE_DEPTH} directories; left in place",
            OsStr::from_bytes(name.as_bytes())
        )));
    }
    match dir_fd::open_dir_at(dir.as_fd(), name) {
        Ok(sub) => empty_dir(&sub, depth + 1, first_error),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            return dir_fd::unlink_at(dir.as_fd(), name)
        }
        Err(e) => return Err(e),
    }
    dir_fd::rmdir_at(dir.as_fd(), name)
}
