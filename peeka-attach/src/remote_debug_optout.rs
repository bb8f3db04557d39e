//! Which of CPython's opt-outs most likely disabled PEP 768 remote
//! debugging in a target, read from its environment and command line.

use std::fs;

/// A sentence naming the opt-out in effect in process `pid`.
///
/// CPython 3.14+ disables remote debugging when `PYTHON_DISABLE_REMOTE_DEBUG`
/// is set (to any value), with `-X disable-remote-debug`, or when it was
/// built `--without-remote-debug`.
pub fn likely_opt_out(pid: u32) -> String {
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    if let Some(entry) = environ
        .split(|&b| b == 0)
        .find(|e| e.starts_with(b"PYTHON_DISABLE_REMOTE_DEBUG="))
    {
        return format!(
            "the environment variable {} is set",
            String::from_utf8_lossy(entry)
        );
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let x_option = args.windows(2).any(|w| w[0] == b"-X" && w[1] == b"disable-remote-debug")
        || args.iter().any(|a| *a == b"-Xdisable-remote-debug");
    if x_option {
        return "it was started with `-X disable-remote-debug`".to_owned();
    }
    if environ.is_empty() {
        return "its environment could not be read; it was started with PYTHON_DISABLE_REMOTE_DEBUG, `-X disable-remote-debug`, or built --without-remote-debug".to_owned();
    }
    "neither PYTHON_DISABLE_REMOTE_DEBUG nor `-X disable-remote-debug` is in effect, so the interpreter was most likely built --without-remote-debug".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn names_the_environment_variable_and_the_x_option() {
        let mut env_child = Command::new("sleep")
            .arg("5")
            .env("PYTHON_DISABLE_REMOTE_DEBUG", "1")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let text = likely_opt_out(env_child.id());
        let _ = env_child.kill();
        let _ = env_child.wait();
        assert!(text.contains("PYTHON_DISABLE_REMOTE_DEBUG=1"), "{text}");

        // `sh -c` keeps the trailing arguments in its command line.
        let mut x_child = Command::new("sh")
            .args(["-c", "sleep 5; true", "-X", "disable-remote-debug"])
            .env_remove("PYTHON_DISABLE_REMOTE_DEBUG")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let text = likely_opt_out(x_child.id());
        let _ = x_child.kill();
        let _ = x_child.wait();
        assert!(text.contains("-X disable-remote-debug"), "{text}");
    }
}
