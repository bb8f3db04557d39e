//! `run`: start a program with the agent loaded before its first line and
//! follow one probe command (`watch`, `stack`, `monitor`, `trace`) from its
//! start to its exit.
//!
//! The probe is opened with `"pending": true` before the program runs, so
//! a function that does not exist yet (the script's own, or one of a module
//! imported later) is probed as soon as it is defined. The stream ends when
//! the program exits (reason `detached`) or by `-n`/`-c`/Ctrl-C; `peeka-cli`
//! then waits for the program and exits with its exit code (128 + N when a
//! signal N ended it). The program's stdin, stdout and stderr are
//! `peeka-cli`'s own.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use clap::Parser;
use peeka_core::client::{
    Launch, LaunchConfig, MonitorReport, Program, Session, StackObservation, TraceObservation,
    WatchObservation,
};
use serde_json::{json, Map};

use super::diagnostics::trace_request;
use super::probes::{monitor_request, stack_request, watch_request};
use super::stream::follow;
use crate::diagnostics_text;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::run_args::{split_rest, ProbeLine, RunArgs, RunProbe};
use crate::text;

pub(crate) fn run(args: &RunArgs, out: &Output) -> Result<ExitCode, CliError> {
    let usage = |message: String| CliError::new(ExitCode::Usage, message);
    let parts = match split_rest(&args.rest) {
        Some(parts) => Some(parts),
        // `run -m MODULE -- watch ...`: clap took the `--` itself.
        None if args.module.is_some() && !args.rest.is_empty() => {
            Some((&args.rest[..0], &args.rest[..]))
        }
        None => None,
    };
    let Some((program_part, probe_part)) = parts else {
        return Err(usage(
            "name the probe command after `--`: `peeka-cli run app.py [ARGS...] -- watch __main__.main`"
                .into(),
        ));
    };
    let probe = ProbeLine::try_parse_from(probe_part)
        .map_err(|e| usage(e.render().to_string().trim_end().to_owned()))?
        .command;
    if probe.pid().is_some() {
        return Err(usage(
            "`--pid` has no place in `run`: the probe goes on the program it starts".into(),
        ));
    }
    let (program, program_args) = match &args.module {
        Some(module) => (Program::Module(module.clone()), program_part),
        None => match program_part.split_first() {
            Some((script, rest)) => (Program::Script(PathBuf::from(script)), rest),
            None => {
                return Err(usage(
                    "name the script to run (or a module with -m) before `--`".into(),
                ))
            }
        },
    };
    let config = LaunchConfig::new(program.clone())
        .python(args.python.clone())
        .args(program_args.iter().cloned())
        .timeout(args.timeout);
    let (session, mut launch) = Session::launch(&config)?;
    let what = match &program {
        Program::Script(path) => path.display().to_string(),
        Program::Module(name) => format!("-m {name}"),
    };
    let mut extra = Map::new();
    extra.insert("pid".into(), json!(launch.pid()));
    out.status(
        &format!(
            "started {what} (pid {}) with the agent loaded",
            launch.pid()
        ),
        extra,
    );
    let pid = launch.pid();
    let followed = follow_probe(&session, &mut launch, &probe, out);
    drop(session);
    let status = launch
        .wait()
        .map_err(|e| CliError::new(ExitCode::CommandFailed, e.to_string()))?;
    let code = exit_code_of(status);
    if let Err(CliError {
        message,
        code: error_code,
        exit,
    }) = followed
    {
        out.error("run", &message, error_code.as_deref(), exit.code());
    }
    out.event("run", "exited", json!({"pid": pid, "code": code}), |p| {
        p.dim(&format!("run: the program exited with code {code}"))
    });
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code);
}

/// Opens the probe (pending), lets the program run, follows the stream.
fn follow_probe(
    session: &Session,
    launch: &mut Launch,
    probe: &RunProbe,
    out: &Output,
) -> Result<ExitCode, CliError> {
    match probe {
        RunProbe::Watch(args) => {
            let subscription =
                session.open_pending::<WatchObservation>("watch", &watch_request(args))?;
            launch.start_program()?;
            follow(out, "watch", subscription, text::watch)
        }
        RunProbe::Stack(args) => {
            let subscription =
                session.open_pending::<StackObservation>("stack", &stack_request(args))?;
            launch.start_program()?;
            follow(out, "stack", subscription, text::stack)
        }
        RunProbe::Monitor(args) => {
            let subscription =
                session.open_pending::<MonitorReport>("monitor", &monitor_request(args))?;
            launch.start_program()?;
            if !out.is_json() {
                out.text_line(&text::monitor_header(&out.paint));
            }
            follow(out, "monitor", subscription, text::monitor)
        }
        RunProbe::Trace(args) => {
            let subscription =
                session.open_pending::<TraceObservation>("trace", &trace_request(args))?;
            launch.start_program()?;
            follow(out, "trace", subscription, diagnostics_text::trace)
        }
    }
}

/// The program's exit code, as a shell reports it.
fn exit_code_of(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}
