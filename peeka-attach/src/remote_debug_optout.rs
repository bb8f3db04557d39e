//! Which of CPython's opt-outs most likely disabled PEP 768 remote
//! debugging in a target, read from its environment and command line.
//!
//! CPython 3.14+ disables remote debugging when `PYTHON_DISABLE_REMOTE_DEBUG`
//! is set (to any value, even an empty one) unless `-E` or `-I` makes it
//! ignore the environment, when it runs with `-X disable-remote-debug`, or
//! when it was built `--without-remote-debug`. The first two leave traces in
//! `/proc/PID/environ` and `/proc/PID/cmdline`; the third is what remains
//! when neither is found.

use std::fmt;
use std::fs;

/// The environment variable that disables remote debugging.
pub const ENV_VAR: &str = "PYTHON_DISABLE_REMOTE_DEBUG";

/// The `-X` option that disables remote debugging.
pub const X_OPTION: &str = "disable-remote-debug";

/// What a process's environment and command line say about the opt-outs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOutEvidence {
    /// The `PYTHON_DISABLE_REMOTE_DEBUG=...` entry, when it is set and the
    /// interpreter honours its environment.
    pub environment: Option<String>,
    /// The variable is set, but `-E` or `-I` makes the interpreter ignore it.
    pub environment_ignored: bool,
    /// `-X disable-remote-debug` is among the interpreter's options.
    pub x_option: bool,
    /// The environment could be read (it needs the target's uid or root).
    pub environment_readable: bool,
}

impl OptOutEvidence {
    /// Reads `/proc/<pid>/environ` and `/proc/<pid>/cmdline`.
    pub fn read(pid: u32) -> Self {
        let environ = fs::read(format!("/proc/{pid}/environ"));
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        match environ {
            Ok(environ) => Self::from_process_text(Some(&environ), &cmdline),
            Err(_) => Self::from_process_text(None, &cmdline),
        }
    }

    /// The evidence in the NUL-separated contents of an `environ` file
    /// (`None` when it could not be read) and a `cmdline` file.
    pub fn from_process_text(environ: Option<&[u8]>, cmdline: &[u8]) -> Self {
        let options = InterpreterOptions::parse(cmdline);
        let prefix = format!("{ENV_VAR}=");
        let entry = environ.and_then(|environ| {
            environ
                .split(|&b| b == 0)
                .find(|e| e.starts_with(prefix.as_bytes()))
                .map(|e| String::from_utf8_lossy(e).into_owned())
        });
        let ignored = entry.is_some() && options.ignore_environment;
        Self {
            environment: entry.filter(|_| !ignored),
            environment_ignored: ignored,
            x_option: options.x_disable_remote_debug,
            environment_readable: environ.is_some(),
        }
    }

    /// Whether an opt-out of the environment or the command line was found.
    pub fn found(&self) -> bool {
        self.environment.is_some() || self.x_option
    }
}

impl fmt::Display for OptOutEvidence {
    /// A sentence naming the opt-out most likely in effect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.environment, self.x_option) {
            (Some(entry), true) => write!(
                f,
                "the environment variable {entry} is set and it was started with `-X {X_OPTION}`"
            ),
            (Some(entry), false) => write!(f, "the environment variable {entry} is set"),
            (None, true) => write!(f, "it was started with `-X {X_OPTION}`"),
            (None, false) if !self.environment_readable => write!(
                f,
                "its environment could not be read; it was started with {ENV_VAR}, `-X {X_OPTION}`, or built --without-remote-debug"
            ),
            (None, false) => {
                write!(
                    f,
                    "neither {ENV_VAR} nor `-X {X_OPTION}` is in effect, so the interpreter was most likely built --without-remote-debug"
                )?;
                if self.environment_ignored {
                    write!(f, " ({ENV_VAR} is set, but -E or -I makes Python ignore it)")?;
                }
                Ok(())
            }
        }
    }
}

/// A sentence naming the opt-out in effect in process `pid`.
///
/// CPython 3.14+ disables remote debugging when `PYTHON_DISABLE_REMOTE_DEBUG`
/// is set (to any value), with `-X disable-remote-debug`, or when it was
/// built `--without-remote-debug`.
pub fn likely_opt_out(pid: u32) -> String {
    OptOutEvidence::read(pid).to_string()
}

/// The interpreter options of a command line that matter here.
#[derive(Debug, Default)]
struct InterpreterOptions {
    /// `-E` or `-I`.
    ignore_environment: bool,
    /// `-X disable-remote-debug` (with or without `=value`).
    x_disable_remote_debug: bool,
}

impl InterpreterOptions {
    /// Parses the options before the script, `-c` or `-m`, as CPython's own
    /// option parser does: short options may be grouped (`-EX...`), and
    /// `-X`/`-W` take the rest of the group or the next argument.
    fn parse(cmdline: &[u8]) -> Self {
        let args: Vec<&[u8]> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        let mut options = Self::default();
        let mut i = 1;
        'args: while i < args.len() {
            let arg = args[i];
            i += 1;
            if arg == b"-" || arg == b"--" || !arg.starts_with(b"-") {
                break;
            }
            if arg.starts_with(b"--") {
                if arg == b"--check-hash-based-pycs" {
                    i += 1;
                }
                continue;
            }
            for (at, &letter) in arg.iter().enumerate().skip(1) {
                match letter {
                    b'c' | b'm' => break 'args,
                    b'E' | b'I' => options.ignore_environment = true,
                    b'X' | b'W' => {
                        let rest = &arg[at + 1..];
                        let value = if rest.is_empty() {
                            i += 1;
                            args.get(i - 1).copied().unwrap_or_default()
                        } else {
                            rest
                        };
                        let name = value.split(|&b| b == b'=').next().unwrap_or_default();
                        if letter == b'X' && name == X_OPTION.as_bytes() {
                            options.x_disable_remote_debug = true;
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn evidence(environ: &str, cmdline: &str) -> OptOutEvidence {
        let environ = environ.replace(' ', "\0");
        let cmdline = cmdline.replace(' ', "\0");
        OptOutEvidence::from_process_text(Some(environ.as_bytes()), cmdline.as_bytes())
    }

    #[test]
    fn names_the_environment_variable() {
        let mut child = Command::new("sleep")
            .arg("5")
            .env(ENV_VAR, "1")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // `spawn` can return while the kernel is still building the new
        // program's stack, before its environment is visible.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs::read_to_string(format!("/proc/{}/comm", child.id()))
            .map_or(true, |c| c.trim() != "sleep")
            || fs::read(format!("/proc/{}/environ", child.id())).map_or(true, |e| e.is_empty())
        {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let text = likely_opt_out(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(text.contains("PYTHON_DISABLE_REMOTE_DEBUG=1"), "{text}");

        // Any value counts, even an empty one.
        let found = evidence(
            "HOME=/root PYTHON_DISABLE_REMOTE_DEBUG=",
            "python3.14 app.py",
        );
        assert_eq!(
            found.environment.as_deref(),
            Some("PYTHON_DISABLE_REMOTE_DEBUG=")
        );
        assert!(found.found());
    }

    #[test]
    fn finds_the_x_option_where_python_reads_it() {
        for cmdline in [
            "python3.14 -X disable-remote-debug app.py",
            "python3.14 -Xdisable-remote-debug -c pass",
            "python3.14 -u -X dev -X disable-remote-debug=1 -m http.server",
            "python3.14 -EsX disable-remote-debug app.py",
        ] {
            let found = evidence("PATH=/bin", cmdline);
            assert!(found.x_option, "{cmdline}");
            assert!(
                found.to_string().contains("-X disable-remote-debug"),
                "{cmdline}: {found}"
            );
        }
        // Arguments of the script or of -c are not interpreter options.
        for cmdline in [
            "python3.14 app.py -X disable-remote-debug",
            "python3.14 -c pass -X disable-remote-debug",
            "python3.14 -W ignore -X dev -- -X disable-remote-debug",
            "python3.14 -X disable-remote-debugger app.py",
        ] {
            assert!(!evidence("PATH=/bin", cmdline).x_option, "{cmdline}");
        }
    }

    #[test]
    fn minus_e_and_minus_i_ignore_the_environment() {
        for cmdline in [
            "python3.14 -E app.py",
            "python3.14 -I app.py",
            "python3.14 -uE app.py",
        ] {
            let found = evidence("PYTHON_DISABLE_REMOTE_DEBUG=1", cmdline);
            assert_eq!(found.environment, None, "{cmdline}");
            assert!(found.environment_ignored, "{cmdline}");
            let text = found.to_string();
            assert!(
                text.contains("--without-remote-debug") && text.contains("-E or -I"),
                "{text}"
            );
        }
    }

    #[test]
    fn falls_back_to_the_build_or_to_uncertainty() {
        let nothing = evidence("PATH=/bin", "python3.14 app.py");
        assert!(!nothing.found());
        assert!(nothing
            .to_string()
            .contains("most likely built --without-remote-debug"));
        let unreadable = OptOutEvidence::from_process_text(None, b"python3.14\0app.py\0");
        assert!(
            unreadable.to_string().contains("could not be read"),
            "{unreadable}"
        );
        let both = evidence(
            "PYTHON_DISABLE_REMOTE_DEBUG=yes",
            "python3.14 -X disable-remote-debug app.py",
        );
        let text = both.to_string();
        assert!(
            text.contains("PYTHON_DISABLE_REMOTE_DEBUG=yes")
                && text.contains("-X disable-remote-debug"),
            "{text}"
        );
    }
}
