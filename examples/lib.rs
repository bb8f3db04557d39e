//! Runnable examples of embedding Peeka's library crates.
//!
//! Run one with `cargo run -p peeka-examples --example <name>`; the list is
//! in this package's `Cargo.toml`. This library holds what several examples
//! share: starting the bundled demo service.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The bundled demo service (`examples/demo_target.py`), killed when this
/// value is dropped, however the example ends.
#[derive(Debug)]
pub struct DemoService(Child);

impl DemoService {
    /// Starts the demo service with `python` and waits until it serves.
    ///
    /// # Errors
    /// When `python` cannot be started or the service does not announce
    /// itself.
    pub fn start(python: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo_target.py");
        let mut child = Command::new(python)
            .arg("-u")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start `{python}`: {e}; pass --python /path/to/python3"))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the demo service did not start".into());
        }
        Ok(Self(child))
    }

    /// The service's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for DemoService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `--NAME VALUE` on the command line, if given.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The interpreter to run the demo service with: `--python`, else `python3`.
pub fn python() -> String {
    arg("python").unwrap_or_else(|| "python3".into())
}
