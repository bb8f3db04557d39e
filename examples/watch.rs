//! Watch a function of a running Python service with the blocking client:
//! start the demo service, attach, print 5 calls of `place_order` (as
//! JSON Lines, with the wire's field names, and as a readable line), then
//! detach.
//!
//! `cargo run -p peeka-examples --example watch [-- --python python3.12]`
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use peeka_core::client::{AttachConfig, Session, StreamItem, WatchRequest};
use peeka_examples::{python, DemoService};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = DemoService::start(&python())?;
    let (session, report) = Session::attach(service.pid(), &AttachConfig::default())?;
    println!(
        "attached to pid {} (Python {}) in {:.1} ms",
        report.pid,
        report.python,
        report.timeline.total().as_secs_f64() * 1000.0
    );

    // Every exit of place_order, successful or not, five times.
    let request = WatchRequest::new("__main__.place_order")
        .finish(true)
        .times(5);
    let mut calls = session.watch(&request)?;
    for target in &calls.started().matched {
        println!(
            "watching {} ({}:{})",
            target.name,
            target.file.as_deref().unwrap_or("?"),
            target.line.unwrap_or_default()
        );
    }
    for item in calls.by_ref() {
        match item? {
            StreamItem::Observation { seq, data } => {
                println!("{}", serde_json::to_string(&data)?);
                println!(
                    "  #{seq} {}{} -> {} in {:.3} ms on {}",
                    data.func_name,
                    data.params,
                    if data.success == Some(true) {
                        data.return_obj.to_string()
                    } else {
                        format!("raised {}", data.throw_exp)
                    },
                    data.cost.unwrap_or_default(),
                    data.thread_name
                );
            }
            StreamItem::Event { kind, data, .. } => println!("  event {kind}: {data}"),
        }
    }
    if let Some(end) = calls.end() {
        println!("stream ended: {:?}, {} dropped", end.reason, end.dropped);
    }
    let outcome = session.detach()?;
    println!(
        "detached; agent directory removed: {}",
        outcome.directory_removed
    );
    Ok(())
}
