//! Monitor a function with the async client (tokio): start the demo
//! service, attach, print two one-second cycles of call statistics of
//! `place_order`, then detach.
//!
//! `cargo run -p peeka-examples --example monitor_async [-- --python python3.12]`
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use std::time::Duration;

use futures_util::StreamExt;
use peeka_core::client::{AsyncSession, AttachConfig, MonitorRequest, StreamItem};
use peeka_examples::{python, DemoService};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = DemoService::start(&python())?;
    let (session, report) = AsyncSession::attach(service.pid(), &AttachConfig::default()).await?;
    println!("attached to pid {} (Python {})", report.pid, report.python);

    let request = MonitorRequest::new("__main__.place_order")
        .interval(Duration::from_secs(1))
        .cycles(2);
    let mut reports = session.monitor(&request).await?;
    while let Some(item) = reports.next().await {
        if let StreamItem::Observation { data, .. } = item? {
            println!(
                "cycle {}: {} calls ({} failed, {:.1}%), avg {:.3} ms, p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                data.cycle,
                data.total,
                data.fail,
                data.fail_rate * 100.0,
                data.rt_avg,
                data.rt_p50,
                data.rt_p95,
                data.rt_p99,
                data.rt_max
            );
        }
    }
    let outcome = session.detach().await?;
    println!(
        "detached; agent directory removed: {}",
        outcome.directory_removed
    );
    Ok(())
}
