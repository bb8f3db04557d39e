//! The agent's Python sources, embedded in this crate.
//!
//! The files live in `peeka-core/agent/peeka_agent/` as real `.py` files
//! (so Python tests and linters apply to them) and are compiled into the
//! crate with `include_bytes!`. At attach time the client writes them into
//! the target's private directory; the bootstrap imports them as a package
//! and calls `start(directory, token)`.

use peeka_attach::AgentFiles;

/// The agent's version, as its `version.py` declares it.
pub const AGENT_VERSION: &str = "0.1.0";

macro_rules! agent_sources {
    ($($name:literal),* $(,)?) => {
        /// Every file of the agent package: path relative to the private
        /// directory, and contents.
        pub const SOURCES: &[(&str, &[u8])] = &[
            $((
                concat!("peeka_agent/", $name),
                include_bytes!(concat!("../agent/peeka_agent/", $name)),
            )),*
        ];
    };
}

agent_sources!(
    "__init__.py",
    "admission.py",
    "agent_threads.py",
    "builtin_commands.py",
    "capture.py",
    "classes.py",
    "commands.py",
    "condition_inline.py",
    "connection.py",
    "expr.py",
    "fork_guard.py",
    "gil_boost.py",
    "heap.py",
    "inspect_command.py",
    "introspect.py",
    "latency_histogram.py",
    "logger_command.py",
    "memory_command.py",
    "monitor_command.py",
    "outbox.py",
    "patterns.py",
    "peercred.py",
    "pending.py",
    "probe_code_swap.py",
    "probe_monitoring.py",
    "probes.py",
    "reset_command.py",
    "run_program.py",
    "safe_repr.py",
    "safe_values.py",
    "search_command.py",
    "server.py",
    "stack_command.py",
    "streams.py",
    "thread_command.py",
    "thread_info.py",
    "top_command.py",
    "trace_command.py",
    "trace_engine.py",
    "version.py",
    "watch_command.py",
    "wire.py",
    "writer_budget.py",
);

/// The agent as the attach layer loads it.
pub fn agent_files() -> AgentFiles {
    AgentFiles {
        files: SOURCES
            .iter()
            .map(|(name, contents)| ((*name).to_owned(), contents.to_vec()))
            .collect(),
        entry_file: "peeka_agent/__init__.py".into(),
        entry_function: "start".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `.py` file of the package is embedded, and nothing else.
    #[test]
    fn every_agent_module_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agent/peeka_agent");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".py"))
            .map(|name| format!("peeka_agent/{name}"))
            .collect();
        let embedded: BTreeSet<String> = SOURCES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn the_version_matches_the_python_side() {
        let version = SOURCES
            .iter()
            .find(|(name, _)| name.ends_with("version.py"))
            .map(|(_, text)| String::from_utf8_lossy(text).into_owned())
            .unwrap();
        assert!(
            version.contains(&format!("\"{AGENT_VERSION}\"")),
            "{version}"
        );
    }
}
