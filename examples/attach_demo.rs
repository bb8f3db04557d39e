//! Peeka's demo: start a small Python service, attach to it while it runs
//! (no restart, nothing installed in its environment), talk to the agent
//! over the wire protocol, then detach and show that nothing is left.
//!
//! Run it with `cargo run -p peeka-examples --example attach_demo`; pass
//! `--python /path/to/python3.X` to pick the interpreter (default:
//! `python3` on the PATH).
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peeka_attach::attach::{attach, AttachOptions};
use peeka_core::agent::agent_files;
use peeka_protocol::{Hello, Message, MessageReader, MessageWriter, Payload, Request};

/// Kills the demo service when the demo ends, however it ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_service(python: &str) -> Result<Service, Box<dyn std::error::Error>> {
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
        return Err("the demo service did not start".into());
    }
    Ok(Service(child))
}

/// Sends one request and waits for its response.
fn call(
    writer: &mut MessageWriter<UnixStream>,
    reader: &mut MessageReader<UnixStream>,
    id: u64,
    command: &str,
) -> Result<Payload, Box<dyn std::error::Error>> {
    writer.write_message(&Message::Request(Request {
        id,
        command: command.into(),
        params: Payload::empty_object(),
    }))?;
    loop {
        match reader.read_message()? {
            Some(Message::Response(response)) if response.id == id => {
                return response
                    .result
                    .map_err(|e| format!("{}: {}", e.code, e.message).into())
            }
            Some(_) => continue,
            None => return Err("the agent closed the connection".into()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let python = args
        .iter()
        .position(|a| a == "--python")
        .and_then(|i| args.get(i + 1))
        .map_or("python3", String::as_str);

    let service = start_service(python)?;
    let pid = service.0.id();
    println!("started the demo service: {python}, pid {pid}");

    let attached = attach(pid, &AttachOptions::new(agent_files()))?;
    println!(
        "attached to Python {} with the {} method in {:.1} ms:",
        attached.python,
        attached.method,
        attached.timeline.total().as_secs_f64() * 1000.0
    );
    for step in &attached.timeline.steps {
        println!(
            "  {:<40} {:>8.2} ms",
            step.name,
            step.elapsed.as_secs_f64() * 1000.0
        );
    }

    let socket = UnixStream::connect(attached.staging.host_dir.join("agent.sock"))?;
    let mut reader = MessageReader::new(socket.try_clone()?);
    let mut writer = MessageWriter::new(socket);
    writer.write_message(&Message::Hello(Hello::new(concat!(
        "attach-demo/",
        env!("CARGO_PKG_VERSION")
    ))))?;
    match reader.read_message()? {
        Some(Message::Welcome(welcome)) => {
            welcome.check_compatible()?;
            println!(
                "agent {} answers from inside {} {} (pid {} in its namespace), protocol {}",
                welcome.agent_version,
                welcome.python.implementation,
                welcome.python.version,
                welcome.pid,
                welcome.protocol
            );
        }
        other => return Err(format!("unexpected answer to hello: {other:?}").into()),
    }

    let mut round_trips = Vec::new();
    for id in 1..=200 {
        let started = Instant::now();
        call(&mut writer, &mut reader, id, "ping")?;
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    println!(
        "200 pings: median round trip {:.0} us, p99 {:.0} us",
        round_trips[100].as_secs_f64() * 1e6,
        round_trips[197].as_secs_f64() * 1e6
    );
    let info = call(&mut writer, &mut reader, 1000, "info")?;
    println!("agent info: {info}");

    let detached = call(&mut writer, &mut reader, 1001, "detach")?;
    println!("detach: {detached}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while attached.staging.host_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "private directory {} {}; the service runs on untouched",
        attached.staging.target_dir.display(),
        if attached.staging.host_dir.exists() {
            "is STILL THERE"
        } else {
            "is gone"
        }
    );
    drop(service);
    Ok(())
}
