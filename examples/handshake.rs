//! The Peeka wire protocol over a real Unix socket pair: a client sends
//! `hello` and a request, a minimal responder written with the same crate
//! answers, and the client checks the protocol version and reads the reply.
//!
//! This is what `peeka-core`'s client does under the hood; it shows how a
//! tool in another process (or another language) talks to the agent.
//!
//! Run it with `cargo run -p peeka-examples --example handshake`.

#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use std::os::unix::net::UnixStream;
use std::thread;

use peeka_protocol::{
    ErrorBody, ErrorCode, Hello, Message, MessageReader, MessageWriter, Payload, PythonInfo,
    Request, Response, TransportError, Welcome, PROTOCOL_VERSION,
};

/// Answers a hello and one request the way the agent does.
fn respond(socket: UnixStream) -> Result<(), TransportError> {
    let mut reader = MessageReader::new(socket.try_clone()?);
    let mut writer = MessageWriter::new(socket);
    while let Some(message) = reader.read_message()? {
        let answer = match message {
            Message::Hello(hello) => hello.answer(Welcome {
                protocol: PROTOCOL_VERSION,
                agent_version: env!("CARGO_PKG_VERSION").into(),
                python: PythonInfo {
                    version: "3.12.1".into(),
                    implementation: "CPython".into(),
                },
                pid: std::process::id(),
                capabilities: vec!["sys.monitoring".into()],
            }),
            Message::Request(request) => Message::Response(Response {
                id: request.id,
                result: Err(ErrorBody {
                    code: ErrorCode::NotFound,
                    message: format!(
                        "`{}` matched no function; try `sc` to list loaded classes",
                        request.params.as_str()
                    ),
                    traceback: None,
                }),
            }),
            _ => continue,
        };
        writer.write_message(&answer)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, agent) = UnixStream::pair()?;
    let responder = thread::spawn(move || respond(agent));

    let mut reader = MessageReader::new(client.try_clone()?);
    let mut writer = MessageWriter::new(client);

    writer.write_message(&Message::Hello(Hello::new("handshake-example/0.1")))?;
    match reader.read_message()? {
        Some(Message::Welcome(welcome)) => {
            welcome.check_compatible()?;
            println!(
                "connected: agent {} in {} {} (pid {}), protocol {}",
                welcome.agent_version,
                welcome.python.implementation,
                welcome.python.version,
                welcome.pid,
                welcome.protocol
            );
        }
        Some(Message::Rejected(rejected)) => return Err(rejected.message.into()),
        other => return Err(format!("unexpected answer to hello: {other:?}").into()),
    }

    writer.write_message(&Message::Request(Request {
        id: 1,
        command: "watch".into(),
        params: Payload::from_json(r#"{"pattern":"app.missing"}"#)?,
    }))?;
    if let Some(Message::Response(Response { id, result })) = reader.read_message()? {
        match result {
            Ok(data) => println!("request {id} succeeded: {data}"),
            Err(error) => println!("request {id} failed [{}]: {}", error.code, error.message),
        }
    }

    drop(writer); // closes our half; the responder sees end of stream
    drop(reader);
    responder.join().map_err(|_| "responder panicked")??;
    Ok(())
}
