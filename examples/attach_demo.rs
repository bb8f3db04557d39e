//! Peeka's demo: start a small Python service, attach to it while it runs
//! (no restart, nothing installed in its environment), talk to the agent
//! through the typed client, then detach and show that nothing is left.
//!
//! Run it with `cargo run -p peeka-examples --example attach_demo`; pass
//! `--python /path/to/python3.X` to pick the interpreter (default:
//! `python3` on the PATH).
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use std::time::{Duration, Instant};

use peeka_core::client::{AttachConfig, Session};
use peeka_examples::{python, DemoService};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = python();
    let service = DemoService::start(&python)?;
    let pid = service.pid();
    println!("started the demo service: {python}, pid {pid}");

    let (session, report) = Session::attach(pid, &AttachConfig::default())?;
    let method = report
        .method
        .map_or_else(|| "reused agent's".to_owned(), |m| m.to_string());
    println!(
        "attached to Python {} with the {method} method in {:.1} ms:",
        report.python,
        report.timeline.total().as_secs_f64() * 1000.0
    );
    for step in &report.timeline.steps {
        println!(
            "  {:<40} {:>8.2} ms",
            step.name,
            step.elapsed.as_secs_f64() * 1000.0
        );
    }
    let welcome = session.welcome()?;
    println!(
        "agent {} answers from inside {} {} (pid {} in its namespace), protocol {}",
        welcome.agent_version,
        welcome.python.implementation,
        welcome.python.version,
        welcome.pid,
        welcome.protocol
    );

    let mut round_trips = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        session.ping()?;
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    println!(
        "200 pings: median round trip {:.0} us, p99 {:.0} us",
        round_trips[100].as_secs_f64() * 1e6,
        round_trips[197].as_secs_f64() * 1e6
    );
    let info = session.info()?;
    println!("agent info: {}", serde_json::to_string(&info)?);

    let detached = session.detach()?;
    println!("detach: {}", serde_json::to_string(&detached)?);
    let host_dir = session.socket().parent().map(|p| p.to_path_buf());
    let deadline = Instant::now() + Duration::from_secs(2);
    while host_dir.as_ref().is_some_and(|d| d.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "private directory {} {}; the service runs on untouched",
        report.private_dir.display(),
        if host_dir.is_some_and(|d| d.exists()) {
            "is STILL THERE"
        } else {
            "is gone"
        }
    );
    drop(service);
    Ok(())
}
