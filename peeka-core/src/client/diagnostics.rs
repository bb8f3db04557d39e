//! `trace`, `thread` and `top`: their requests, answers and observations,
//! and the session methods that run them.
//!
//! As elsewhere in the client, requests serialize to exactly the `params`
//! of `docs/commands.md` (unset options are not sent, so the agent's
//! defaults apply) and answers keep the wire names, with fields a newer
//! agent adds kept in `extra`.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::core::encode_params;
use super::error::ClientError;
use super::observations::{Location, StackFrame};
use super::session::Session;
use super::subscription::Subscription;

fn is_false(value: &bool) -> bool {
    !*value
}

fn seconds<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

fn from_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(deserializer)?
        .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
        .transpose()
}

// -- trace ---------------------------------------------------------------------

/// `trace`: the call tree below each call of the functions a pattern names,
/// with timings.
///
/// ```
/// use peeka_core::client::TraceRequest;
///
/// let request = TraceRequest::new("shop.checkout")
///     .depth(2)
///     .times(1)
///     .condition("cost > 10")
///     .min_duration(0.5)
///     .skip_builtin(false);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"pattern":"shop.checkout","depth":2,"times":1,"condition":"cost > 10","min_duration":0.5,"skip_builtin":false}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TraceRequest {
    /// `module.function` or `module.Class.method` (plain functions only).
    pub pattern: String,
    /// Levels of children below the root (`-d`, agent default 3, at most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// End the stream after this many traced calls (`-n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Only report calls for which this expression is true (`cost` is the
    /// root call's milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Leave out nodes whose total duration is below this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<f64>,
    /// Leave out the standard library and C functions (agent default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_builtin: Option<bool>,
    /// The writer's CPU budget for this stream, in percent of one CPU (1 to
    /// 50; agent default 10); see
    /// [`WatchRequest::send_budget`](crate::client::WatchRequest::send_budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_budget: Option<u8>,
}

impl TraceRequest {
    /// Traces `pattern` with the agent's defaults.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            depth: None,
            times: None,
            condition: None,
            min_duration: None,
            skip_builtin: None,
            send_budget: None,
        }
    }

    /// Levels of children below the root.
    pub fn depth(mut self, levels: u32) -> Self {
        self.depth = Some(levels);
        self
    }

    /// End after `n` traced calls.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Only report calls for which `expression` is true.
    pub fn condition(mut self, expression: impl Into<String>) -> Self {
        self.condition = Some(expression.into());
        self
    }

    /// Leave out nodes shorter than `ms` milliseconds in total.
    pub fn min_duration(mut self, ms: f64) -> Self {
        self.min_duration = Some(ms);
        self
    }

    /// Whether the standard library and C functions are left out.
    pub fn skip_builtin(mut self, skip: bool) -> Self {
        self.skip_builtin = Some(skip);
        self
    }

    /// Lets the agent spend up to `percent` of one CPU (1 to 50; default 10)
    /// sending this stream's call trees under a flood, at the same cost to a
    /// CPU-bound target; see
    /// [`WatchRequest::send_budget`](crate::client::WatchRequest::send_budget).
    pub fn send_budget(mut self, percent: u8) -> Self {
        self.send_budget = Some(percent);
        self
    }
}

/// One node of a call tree: a function called from one call site, its calls
/// aggregated. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceNode {
    /// `module.qualname` (for C functions, their qualified name).
    pub function: String,
    /// The file defining the function (`null` for C functions).
    #[serde(default)]
    pub filename: Option<String>,
    /// The function's first line (`null` for C functions).
    #[serde(default)]
    pub lineno: Option<u32>,
    /// The file of the call site.
    #[serde(default)]
    pub call_filename: Option<String>,
    /// The line of the call site.
    #[serde(default)]
    pub call_lineno: Option<u32>,
    /// 0 for the root, 1 for its children, ...
    #[serde(default)]
    pub depth: u32,
    /// Whether this is a C function or method.
    #[serde(default)]
    pub builtin: bool,
    /// Calls aggregated in this node.
    #[serde(default)]
    pub count: u64,
    /// Their summed duration.
    #[serde(default)]
    pub duration_ms: f64,
    /// The shortest call.
    #[serde(default)]
    pub min_ms: f64,
    /// The longest call.
    #[serde(default)]
    pub max_ms: f64,
    /// `duration_ms` minus the children's.
    #[serde(default)]
    pub self_ms: f64,
    /// The calls made from this node, in the order first seen.
    #[serde(default)]
    pub children: Vec<TraceNode>,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One traced call of `trace`: its call tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceObservation {
    /// The traced function.
    pub func_name: String,
    /// `AtExit` or `AtExceptionExit`.
    pub location: Location,
    /// `"Type: message"` when the call raised.
    #[serde(rename = "throwExp", default)]
    pub throw_exp: Option<String>,
    /// The calling thread's identifier.
    #[serde(default)]
    pub thread_id: u64,
    /// The calling thread's name.
    #[serde(default)]
    pub thread_name: String,
    /// Unix time at the end of the call, in seconds.
    #[serde(default)]
    pub timestamp: f64,
    /// The root call's duration in milliseconds.
    #[serde(default)]
    pub total_duration_ms: f64,
    /// Nodes in `call_tree`.
    #[serde(default)]
    pub node_count: u64,
    /// Calls left out because the tree reached its node limit.
    #[serde(default)]
    pub dropped_calls: u64,
    /// The root node.
    pub call_tree: TraceNode,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// -- thread --------------------------------------------------------------------

/// A thread's state, as inferred by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ThreadState {
    /// Running Python code or using CPU.
    Runnable,
    /// Waiting (a lock, a queue, I/O, a C call).
    Waiting,
    /// Sleeping with a timeout.
    TimedWaiting,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

impl ThreadState {
    /// The wire name (`RUNNABLE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runnable => "RUNNABLE",
            Self::Waiting => "WAITING",
            Self::TimedWaiting => "TIMED_WAITING",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// How `thread` sorts its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ThreadSort {
    /// By ident (the default of a list).
    Tid,
    /// By name.
    Name,
    /// By state.
    State,
    /// By CPU use over the interval, busiest first (the default of `top`).
    Cpu,
}

/// `thread`: the target's threads, one thread's stack, or the busiest ones.
///
/// ```
/// use peeka_core::client::{ThreadRequest, ThreadState};
///
/// assert_eq!(serde_json::to_string(&ThreadRequest::list()).unwrap(), "{}");
/// assert_eq!(
///     serde_json::to_string(&ThreadRequest::busiest(3).interval_ms(500)).unwrap(),
///     r#"{"top":3,"interval":500}"#
/// );
/// assert_eq!(
///     serde_json::to_string(&ThreadRequest::list().state(ThreadState::Waiting)).unwrap(),
///     r#"{"state":"WAITING"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadRequest {
    /// One thread (a `threading` ident or a native thread id), with its stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u64>,
    /// Frames per stack (agent default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// The N threads that used the most CPU over the interval, with stacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Milliseconds over which CPU use is measured (agent default 200 with
    /// `top`, 100 otherwise; at most 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// Only threads in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ThreadState>,
    /// The order of the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<ThreadSort>,
    /// Show the agent's own threads too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_agent: bool,
}

impl ThreadRequest {
    /// Every thread.
    pub fn list() -> Self {
        Self {
            tid: None,
            depth: None,
            top: None,
            interval: None,
            state: None,
            sort_by: None,
            include_agent: false,
        }
    }

    /// One thread with its stack.
    pub fn detail(tid: u64) -> Self {
        Self {
            tid: Some(tid),
            ..Self::list()
        }
    }

    /// The `n` busiest threads with their stacks.
    pub fn busiest(n: u32) -> Self {
        Self {
            top: Some(n),
            ..Self::list()
        }
    }

    /// Frames per stack.
    pub fn depth(mut self, frames: u32) -> Self {
        self.depth = Some(frames);
        self
    }

    /// Measure CPU use over `ms` milliseconds.
    pub fn interval_ms(mut self, ms: u32) -> Self {
        self.interval = Some(ms);
        self
    }

    /// Only threads in `state`.
    pub fn state(mut self, state: ThreadState) -> Self {
        self.state = Some(state);
        self
    }

    /// The order of the list.
    pub fn sort_by(mut self, sort: ThreadSort) -> Self {
        self.sort_by = Some(sort);
        self
    }

    /// Show the agent's own threads too.
    pub fn include_agent(mut self, on: bool) -> Self {
        self.include_agent = on;
        self
    }
}

/// One thread, as `thread` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadEntry {
    /// The `threading` ident.
    pub tid: u64,
    /// The OS thread id, when known.
    #[serde(default)]
    pub native_id: Option<u64>,
    /// Its name.
    pub name: String,
    /// Whether it is a daemon thread (`null` without a `Thread` object).
    #[serde(default)]
    pub daemon: Option<bool>,
    /// Whether it is alive.
    #[serde(default)]
    pub alive: bool,
    /// Its inferred state.
    pub state: ThreadState,
    /// The kernel's one-letter state (`R`, `S`, `D`...), when readable.
    #[serde(default)]
    pub os_state: Option<String>,
    /// User + system CPU seconds since it started.
    #[serde(default)]
    pub cpu_time: Option<f64>,
    /// Share of one CPU it used over the interval, in percent.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Frames on its stack.
    #[serde(default)]
    pub stack_depth: u32,
    /// Its innermost frame.
    #[serde(default)]
    pub top_frame: Option<StackFrame>,
    /// Whether it is one of the agent's threads (only with `include_agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<bool>,
    /// Its stack, innermost first (detail and busiest views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<StackFrame>>,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to `thread`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadReport {
    /// `list`, `detail` or `busiest`.
    pub action: String,
    /// Threads listed (list and busiest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The threads (list and busiest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<Vec<ThreadEntry>>,
    /// The one thread (detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadEntry>,
    /// The CPU measuring window, in milliseconds.
    #[serde(default)]
    pub interval_ms: u64,
    /// Agent threads left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_agent_threads: Option<u64>,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ThreadReport {
    /// The threads of the answer, whatever its action.
    pub fn entries(&self) -> Vec<&ThreadEntry> {
        match (&self.threads, &self.thread) {
            (Some(threads), _) => threads.iter().collect(),
            (None, Some(thread)) => vec![thread],
            (None, None) => Vec::new(),
        }
    }
}

// -- top -----------------------------------------------------------------------

/// How `top` ranks functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TopSort {
    /// Own samples (the function itself executing), the default.
    Own,
    /// Total samples (the function anywhere on the stack).
    Total,
    /// Own time (the same order as `own`).
    OwnTime,
    /// Total time (the same order as `total`).
    TotalTime,
}

/// `top`: sampling of what every thread executes; one snapshot per report
/// interval.
///
/// ```
/// use std::time::Duration;
/// use peeka_core::client::{TopRequest, TopSort};
///
/// let request = TopRequest::new()
///     .interval(Duration::from_millis(20))
///     .cycles(3)
///     .sort(TopSort::Total)
///     .stacks(true);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"interval":0.02,"cycles":3,"sort":"total","stacks":true}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopRequest {
    /// Time between samples (agent default 20 ms, at least 1 ms); seconds
    /// on the wire.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds",
        deserialize_with = "from_seconds"
    )]
    pub interval: Option<Duration>,
    /// End after this many snapshots (`-c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    /// The ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<TopSort>,
    /// Functions per snapshot (agent default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Time between snapshots (agent default 1 s, at least 0.1 s); seconds
    /// on the wire.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds",
        deserialize_with = "from_seconds"
    )]
    pub report_interval: Option<Duration>,
    /// Send the sampled stacks with each snapshot (for flame graphs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stacks: bool,
    /// Count the samples of waiting threads too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub idle: bool,
    /// Sample the agent's own threads too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_agent: bool,
}

impl Default for TopRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl TopRequest {
    /// Sampling with the agent's defaults.
    pub fn new() -> Self {
        Self {
            interval: None,
            cycles: None,
            sort: None,
            limit: None,
            report_interval: None,
            stacks: false,
            idle: false,
            include_agent: false,
        }
    }

    /// Time between samples.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// End after `n` snapshots.
    pub fn cycles(mut self, n: u64) -> Self {
        self.cycles = Some(n);
        self
    }

    /// The ranking.
    pub fn sort(mut self, sort: TopSort) -> Self {
        self.sort = Some(sort);
        self
    }

    /// Functions per snapshot.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Time between snapshots.
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = Some(interval);
        self
    }

    /// Send the sampled stacks with each snapshot.
    pub fn stacks(mut self, on: bool) -> Self {
        self.stacks = on;
        self
    }

    /// Count the samples of waiting threads too.
    pub fn idle(mut self, on: bool) -> Self {
        self.idle = on;
        self
    }

    /// Sample the agent's own threads too.
    pub fn include_agent(mut self, on: bool) -> Self {
        self.include_agent = on;
        self
    }
}

/// One function of a `top` snapshot. Counts are samples; times seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFunction {
    /// `module.qualname`.
    pub name: String,
    /// Its file.
    #[serde(default)]
    pub filename: Option<String>,
    /// Its first line.
    #[serde(default)]
    pub line: Option<u32>,
    /// Samples whose innermost frame is in it.
    #[serde(default)]
    pub own_count: u64,
    /// Samples with it anywhere on the stack.
    #[serde(default)]
    pub total_count: u64,
    /// `own_count` as a percentage of the snapshot's `total_samples`.
    #[serde(default)]
    pub own_pct: f64,
    /// `total_count` as a percentage of `total_samples`.
    #[serde(default)]
    pub total_pct: f64,
    /// `own_count` times the mean tick period.
    #[serde(default)]
    pub own_time: f64,
    /// `total_count` times the mean tick period.
    #[serde(default)]
    pub total_time: f64,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `top` snapshot (statistics cumulative since the stream started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopSnapshot {
    /// The snapshot's number, from 1.
    pub cycle: u64,
    /// Unix time, seconds.
    #[serde(default)]
    pub timestamp: f64,
    /// The requested time between samples, seconds.
    #[serde(default)]
    pub sample_interval: f64,
    /// Seconds since sampling started.
    #[serde(default)]
    pub elapsed: f64,
    /// Sampling ticks so far.
    #[serde(default)]
    pub ticks: u64,
    /// Active samples (a thread's stack at a tick, the thread using CPU).
    #[serde(default)]
    pub total_samples: u64,
    /// Samples of waiting threads, not counted in the statistics.
    #[serde(default)]
    pub idle_samples: u64,
    /// Threads seen in active samples.
    #[serde(default)]
    pub threads: u64,
    /// Distinct functions seen.
    #[serde(default)]
    pub function_count: u64,
    /// The top functions, ranked.
    #[serde(default)]
    pub functions: Vec<TopFunction>,
    /// With `stacks`: the stacks sampled since the previous snapshot,
    /// `("outer;...;inner", count)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<Vec<(String, u64)>>,
    /// With `stacks`: samples whose stack was not sent (too many distinct
    /// stacks in one snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_stacks: Option<u64>,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// -- the session methods -------------------------------------------------------

impl Session {
    /// `trace`: the call tree below each call of the function `req` names.
    ///
    /// # Errors
    /// [`ClientError::Agent`] with code `not_found` (close matches listed),
    /// `invalid_expression`, `invalid_params` (e.g. a coroutine function),
    /// `limit_exceeded` (no free `sys.monitoring` tool id); and as
    /// [`ping`](Self::ping).
    pub fn trace(&self, req: &TraceRequest) -> Result<Subscription<TraceObservation>, ClientError> {
        self.open("trace", encode_params("trace", req)?)
    }

    /// `thread`: the threads, one thread's stack, or the busiest threads.
    /// The answer comes after the CPU measuring window.
    ///
    /// # Errors
    /// [`ClientError::Agent`] with code `not_found` for an unknown `tid`,
    /// `invalid_params`; and as [`ping`](Self::ping).
    pub fn thread(&self, req: &ThreadRequest) -> Result<ThreadReport, ClientError> {
        self.call_typed("thread", req)
    }

    /// `top`: samples what every thread executes; one snapshot per report
    /// interval.
    ///
    /// # Errors
    /// [`ClientError::Agent`] with code `invalid_params`; and as
    /// [`ping`](Self::ping).
    pub fn top(&self, req: &TopRequest) -> Result<Subscription<TopSnapshot>, ClientError> {
        self.open("top", encode_params("top", req)?)
    }
}

#[cfg(feature = "tokio")]
mod async_methods {
    use super::*;
    use crate::client::{AsyncSession, AsyncSubscription};

    impl AsyncSession {
        /// `trace`; see [`Session::trace`].
        ///
        /// # Errors
        /// As [`Session::trace`].
        pub async fn trace(
            &self,
            req: &TraceRequest,
        ) -> Result<AsyncSubscription<TraceObservation>, ClientError> {
            self.open("trace", encode_params("trace", req)?).await
        }

        /// `thread`; see [`Session::thread`].
        ///
        /// # Errors
        /// As [`Session::thread`].
        pub async fn thread(&self, req: &ThreadRequest) -> Result<ThreadReport, ClientError> {
            self.call_typed("thread", req).await
        }

        /// `top`; see [`Session::top`].
        ///
        /// # Errors
        /// As [`Session::top`].
        pub async fn top(
            &self,
            req: &TopRequest,
        ) -> Result<AsyncSubscription<TopSnapshot>, ClientError> {
            self.open("top", encode_params("top", req)?).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Serialize + serde::de::DeserializeOwned>(wire: &str) -> T {
        let parsed: T = serde_json::from_str(wire).unwrap();
        let back: Value = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(wire).unwrap());
        parsed
    }

    #[test]
    fn send_budget_is_sent_only_when_asked_for() {
        let asked = TraceRequest::new("shop.checkout").send_budget(30);
        assert_eq!(
            serde_json::to_value(&asked).unwrap(),
            serde_json::json!({"pattern": "shop.checkout", "send_budget": 30})
        );
        let default = serde_json::to_value(TraceRequest::new("shop.checkout")).unwrap();
        assert!(default.get("send_budget").is_none(), "{default}");
    }

    #[test]
    fn a_trace_observation_round_trips() {
        let wire = r#"{"func_name":"m.order","location":"AtExit","throwExp":null,"thread_id":1,"thread_name":"MainThread","timestamp":1.5,"total_duration_ms":2.5,"node_count":2,"dropped_calls":0,"call_tree":{"function":"m.order","filename":"/m.py","lineno":3,"call_filename":"/m.py","call_lineno":30,"depth":0,"builtin":false,"count":1,"duration_ms":2.5,"min_ms":2.5,"max_ms":2.5,"self_ms":1.0,"children":[{"function":"len","filename":null,"lineno":null,"call_filename":"/m.py","call_lineno":4,"depth":1,"builtin":true,"count":3,"duration_ms":1.5,"min_ms":0.5,"max_ms":0.5,"self_ms":1.5,"children":[]}]}}"#;
        let parsed: TraceObservation = round_trips(wire);
        assert_eq!(parsed.call_tree.children[0].count, 3);
        assert!(parsed.call_tree.children[0].builtin);
    }

    #[test]
    fn a_thread_report_round_trips() {
        let wire = r#"{"action":"busiest","total":1,"threads":[{"tid":5,"native_id":9,"name":"w","daemon":true,"alive":true,"state":"RUNNABLE","os_state":"R","cpu_time":1.25,"cpu_percent":99.5,"stack_depth":2,"top_frame":{"filename":"/a.py","lineno":3,"function":"burn"},"stack":[{"filename":"/a.py","lineno":3,"function":"burn"}]}],"interval_ms":200,"hidden_agent_threads":3}"#;
        let parsed: ThreadReport = round_trips(wire);
        assert_eq!(parsed.entries()[0].state, ThreadState::Runnable);
        let odd: ThreadEntry =
            serde_json::from_str(r#"{"tid":1,"name":"x","state":"BLOCKED","stack_depth":0}"#)
                .unwrap();
        assert_eq!(odd.state, ThreadState::Unknown);
    }

    #[test]
    fn a_top_snapshot_round_trips() {
        let wire = r#"{"cycle":1,"timestamp":2.0,"sample_interval":0.01,"elapsed":1.0,"ticks":100,"total_samples":90,"idle_samples":110,"threads":1,"function_count":2,"functions":[{"name":"m.burn","filename":"/m.py","line":1,"own_count":90,"total_count":90,"own_pct":100.0,"total_pct":100.0,"own_time":0.9,"total_time":0.9}],"stacks":[["m.<module>;m.burn",90]],"truncated_stacks":0}"#;
        let parsed: TopSnapshot = round_trips(wire);
        assert_eq!(parsed.stacks.unwrap()[0].1, 90);
    }
}
