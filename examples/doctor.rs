//! Explain, without touching it, every reason an attach to a process could
//! fail, and the fix for each: a preflight check before `attach`.
//!
//! Run it with `cargo run -p peeka-examples --example doctor -- <PID>`.
//! It exits with 0 when an attach is expected to work, 1 otherwise.
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use peeka_attach::doctor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pid: u32 = std::env::args()
        .nth(1)
        .ok_or("usage: doctor <PID>")?
        .parse()
        .map_err(|_| "the pid must be a number")?;
    let diagnosis = doctor(pid);
    print!("{diagnosis}");
    if !diagnosis.can_attach() {
        std::process::exit(1);
    }
    Ok(())
}
