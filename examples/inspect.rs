//! Inspect a running Python process without touching it: which CPython it
//! runs, where the interpreter lives, its user, root and pid namespace, and
//! whether this process may attach to it.
//!
//! Run it with `cargo run -p peeka-examples --example inspect -- <PID>`.
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use peeka_attach::Target;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pid: u32 = std::env::args()
        .nth(1)
        .ok_or("usage: inspect <PID>")?
        .parse()
        .map_err(|_| "the pid must be a number")?;
    let target = Target::inspect(pid)?;
    println!(
        "pid            {} (in its namespace: {})",
        target.pid, target.ns_pid
    );
    println!("executable     {}", target.exe.display());
    println!("root           {}", target.root.display());
    println!("uid            {}", target.uid());
    println!("python         {} ({})", target.python.version, target.arch);
    println!(
        "interpreter    {} layout, in {}{}",
        target.python.layout,
        target.python.path.display(),
        if target.python.deleted {
            " (deleted on disk)"
        } else {
            ""
        }
    );
    println!("remote debug   {:?}", target.remote_debug);
    match &target.access.verdict {
        Ok(()) => println!("ptrace access  allowed"),
        Err(why) => println!("ptrace access  denied: {why}"),
    }
    Ok(())
}
