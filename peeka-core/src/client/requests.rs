//! The parameters of the probe commands, as builders.
//!
//! Each type serializes to exactly the `params` object of
//! `docs/commands.md`; options left unset are not sent, so the agent's
//! defaults apply.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

fn is_false(value: &bool) -> bool {
    !*value
}

/// How a probe instruments its functions (the request's `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbeBackend {
    /// `sys.monitoring` on the function's code object (3.12+ only; the
    /// default of `trace` there): no extra frame, beside debuggers and
    /// profilers, 3-4 times the per-call cost of code swapping.
    Monitoring,
    /// `__code__` swapped for an instrumented wrapper while probed (every
    /// version; the default): one extra frame; on 3.12+ the calls that
    /// bypass the function object are seen through `sys.monitoring`.
    CodeSwap,
}

/// `watch`: observe calls of the functions a pattern names (arguments,
/// result or exception, cost).
///
/// ```
/// use peeka_core::client::WatchRequest;
///
/// let request = WatchRequest::new("shop.cart.Cart.total")
///     .exception(true)
///     .success(true)
///     .times(5)
///     .depth(2)
///     .condition("cost > 1");
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"pattern":"shop.cart.Cart.total","exception":true,"success":true,"times":5,"depth":2,"condition":"cost > 1"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WatchRequest {
    /// `module.function` or `module.Class.method`.
    pub pattern: String,
    /// Observe at entry (`-b`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub before: bool,
    /// Observe exceptional exits (`-e`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exception: bool,
    /// Observe normal returns (`-s`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
    /// Observe every exit (`-f`; the default when no flag is set).
    #[serde(default, skip_serializing_if = "is_false")]
    pub finish: bool,
    /// End the stream after this many observations (`-n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// How deep values are expanded (`-x`, 1 to 4; agent default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Only observe calls for which this expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Longest rendered string, in characters (agent default 255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_string: Option<u32>,
    /// Most items rendered per collection (agent default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// Most bytes per observation (agent default 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
    /// The instrumentation: `__code__` swapping ([`ProbeBackend::CodeSwap`],
    /// the agent's default on every version; on 3.12+ `sys.monitoring` also
    /// sees the calls that bypass the function object) or `sys.monitoring`
    /// alone ([`ProbeBackend::Monitoring`], 3.12+; 3-4 times the per-call
    /// cost). Only `trace` keeps `sys.monitoring` as its default on 3.12+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<ProbeBackend>,
    /// The writer's CPU budget for this stream, in percent of one CPU (1 to
    /// 50; agent default 10); see [`WatchRequest::send_budget`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_budget: Option<u8>,
    /// Show values that are not expanded by calling their own `__repr__`
    /// (`--call-repr`; agent default false); see [`WatchRequest::call_repr`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub call_repr: bool,
}

impl WatchRequest {
    /// Watches `pattern` with the agent's defaults (every exit observed).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            before: false,
            exception: false,
            success: false,
            finish: false,
            times: None,
            depth: None,
            condition: None,
            max_string: None,
            max_items: None,
            max_bytes: None,
            backend: None,
            send_budget: None,
            call_repr: false,
        }
    }

    /// Observe at entry (`-b`).
    pub fn before(mut self, on: bool) -> Self {
        self.before = on;
        self
    }

    /// Observe exceptional exits (`-e`).
    pub fn exception(mut self, on: bool) -> Self {
        self.exception = on;
        self
    }

    /// Observe normal returns (`-s`).
    pub fn success(mut self, on: bool) -> Self {
        self.success = on;
        self
    }

    /// Observe every exit (`-f`).
    pub fn finish(mut self, on: bool) -> Self {
        self.finish = on;
        self
    }

    /// End after `n` observations (`-n`).
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Expand values `depth` levels deep (`-x`).
    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }

    /// Only observe calls for which `expression` is true.
    pub fn condition(mut self, expression: impl Into<String>) -> Self {
        self.condition = Some(expression.into());
        self
    }

    /// Longest rendered string, in characters.
    pub fn max_string(mut self, chars: u32) -> Self {
        self.max_string = Some(chars);
        self
    }

    /// Most items rendered per collection.
    pub fn max_items(mut self, items: u32) -> Self {
        self.max_items = Some(items);
        self
    }

    /// Most bytes per observation.
    pub fn max_bytes(mut self, bytes: u32) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Chooses the instrumentation (see [`ProbeBackend`]).
    pub fn backend(mut self, backend: ProbeBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Lets the agent spend up to `percent` of one CPU (1 to 50; the agent's
    /// default is 10) sending this stream's observations when the function
    /// is called faster than they can be sent (the `send_budget` param).
    /// Under such a flood the connection's writer keeps to its budget and
    /// drops, counting them, the observations it cannot send; while this
    /// stream is open it keeps to the largest share any open stream of the
    /// connection asked for. The cost: the writer renders and sends with
    /// the target's GIL held, so a larger share delivers more of a flood
    /// and slows a CPU-bound target by up to as much. Out of range, the
    /// request is refused (`invalid_params`) before any probe is installed.
    ///
    /// ```
    /// use peeka_core::client::WatchRequest;
    ///
    /// let request = WatchRequest::new("shop.cart.Cart.total").send_budget(30);
    /// assert_eq!(
    ///     serde_json::to_string(&request).unwrap(),
    ///     r#"{"pattern":"shop.cart.Cart.total","send_budget":30}"#
    /// );
    /// ```
    pub fn send_budget(mut self, percent: u8) -> Self {
        self.send_budget = Some(percent);
        self
    }

    /// Lets the agent show a value it does not expand (an object beyond
    /// the depth or without fields, a dict key, an exception) by calling
    /// the value's own `__repr__` (the `call_repr` param; off by default,
    /// and for clients that do not send it).
    ///
    /// Off, capture runs none of the target's code: such a value is shown
    /// as `<module.Class object at 0x...>` (or by a repr the agent writes
    /// for builtin and some standard library types), and objects within
    /// the depth are read from their fields. On, the target's `__repr__`
    /// runs guarded (an exception, a recursion or a huge text becomes a
    /// placeholder) but unbounded in time: for `before` rows on the
    /// application's own thread, inside the watched call, so a `__repr__`
    /// that sleeps, takes a lock or queries a database delays the
    /// application by as much; for exit rows on the agent's writer thread,
    /// with the GIL held.
    ///
    /// ```
    /// use peeka_core::client::WatchRequest;
    ///
    /// let request = WatchRequest::new("shop.cart.Cart.total").call_repr(true);
    /// assert_eq!(
    ///     serde_json::to_string(&request).unwrap(),
    ///     r#"{"pattern":"shop.cart.Cart.total","call_repr":true}"#
    /// );
    /// ```
    pub fn call_repr(mut self, on: bool) -> Self {
        self.call_repr = on;
        self
    }
}

/// `stack`: the callers of each call of the functions a pattern names.
///
/// ```
/// use peeka_core::client::StackRequest;
///
/// let request = StackRequest::new("shop.cart.Cart.total").depth(5).send_budget(30);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"pattern":"shop.cart.Cart.total","depth":5,"send_budget":30}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StackRequest {
    /// `module.function` or `module.Class.method`.
    pub pattern: String,
    /// Caller frames per observation (`--depth`, agent default 10, at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// End the stream after this many observations (`-n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Only observe calls for which this expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The instrumentation: `__code__` swapping ([`ProbeBackend::CodeSwap`],
    /// the agent's default on every version; on 3.12+ `sys.monitoring` also
    /// sees the calls that bypass the function object) or `sys.monitoring`
    /// alone ([`ProbeBackend::Monitoring`], 3.12+; 3-4 times the per-call
    /// cost). Only `trace` keeps `sys.monitoring` as its default on 3.12+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<ProbeBackend>,
    /// The writer's CPU budget for this stream, in percent of one CPU (1 to
    /// 50; agent default 10); see [`WatchRequest::send_budget`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_budget: Option<u8>,
    /// Show arguments that are not expanded by calling their own
    /// `__repr__` (agent default false); see [`WatchRequest::call_repr`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub call_repr: bool,
}

impl StackRequest {
    /// Stacks of `pattern` with the agent's defaults.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            depth: None,
            times: None,
            condition: None,
            backend: None,
            send_budget: None,
            call_repr: false,
        }
    }

    /// Caller frames per observation.
    pub fn depth(mut self, frames: u32) -> Self {
        self.depth = Some(frames);
        self
    }

    /// End after `n` observations.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Only observe calls for which `expression` is true.
    pub fn condition(mut self, expression: impl Into<String>) -> Self {
        self.condition = Some(expression.into());
        self
    }

    /// Chooses the instrumentation (see [`ProbeBackend`]).
    pub fn backend(mut self, backend: ProbeBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Lets the agent spend up to `percent` of one CPU (1 to 50; default 10)
    /// sending this stream's observations under a flood, at the same cost
    /// to a CPU-bound target; see [`WatchRequest::send_budget`].
    pub fn send_budget(mut self, percent: u8) -> Self {
        self.send_budget = Some(percent);
        self
    }

    /// Lets the agent show arguments it does not expand by calling their
    /// own `__repr__`: the target's code, run on the agent's writer thread
    /// with the GIL held; see [`WatchRequest::call_repr`] for the risk.
    pub fn call_repr(mut self, on: bool) -> Self {
        self.call_repr = on;
        self
    }
}

fn serialize_seconds<S: Serializer>(
    interval: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match interval {
        Some(interval) => serializer.serialize_f64(interval.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

fn deserialize_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let seconds = Option::<f64>::deserialize(deserializer)?;
    seconds
        .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
        .transpose()
}

/// `monitor`: call statistics of the functions a pattern names, one report
/// per function per interval.
///
/// ```
/// use std::time::Duration;
/// use peeka_core::client::MonitorRequest;
///
/// let request = MonitorRequest::new("shop.cart.Cart.total")
///     .interval(Duration::from_millis(500))
///     .cycles(2);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"pattern":"shop.cart.Cart.total","interval":0.5,"cycles":2}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MonitorRequest {
    /// `module.function` or `module.Class.method`.
    pub pattern: String,
    /// Length of a cycle (agent default 60 s, at least 0.1 s); seconds on
    /// the wire.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_seconds",
        deserialize_with = "deserialize_seconds"
    )]
    pub interval: Option<Duration>,
    /// End the stream after this many cycles (`-c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    /// Only count calls for which this expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The instrumentation: `__code__` swapping ([`ProbeBackend::CodeSwap`],
    /// the agent's default on every version; on 3.12+ `sys.monitoring` also
    /// sees the calls that bypass the function object) or `sys.monitoring`
    /// alone ([`ProbeBackend::Monitoring`], 3.12+; 3-4 times the per-call
    /// cost). Only `trace` keeps `sys.monitoring` as its default on 3.12+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<ProbeBackend>,
}

impl MonitorRequest {
    /// Monitors `pattern` with the agent's defaults.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            interval: None,
            cycles: None,
            condition: None,
            backend: None,
        }
    }

    /// Length of a cycle.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// End after `n` cycles.
    pub fn cycles(mut self, n: u64) -> Self {
        self.cycles = Some(n);
        self
    }

    /// Only count calls for which `expression` is true.
    pub fn condition(mut self, expression: impl Into<String>) -> Self {
        self.condition = Some(expression.into());
        self
    }

    /// Chooses the instrumentation (see [`ProbeBackend`]).
    pub fn backend(mut self, backend: ProbeBackend) -> Self {
        self.backend = Some(backend);
        self
    }
}

/// `reset`: remove probes (of every client), or list them.
///
/// ```
/// use peeka_core::client::ResetRequest;
///
/// assert_eq!(serde_json::to_string(&ResetRequest::all()).unwrap(), "{}");
/// assert_eq!(
///     serde_json::to_string(&ResetRequest::matching("shop.*")).unwrap(),
///     r#"{"pattern":"shop.*"}"#
/// );
/// assert_eq!(serde_json::to_string(&ResetRequest::list()).unwrap(), r#"{"list":true}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResetRequest {
    /// Remove only probes whose pattern matches this glob (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// List the probes instead of removing any.
    #[serde(default, skip_serializing_if = "is_false")]
    pub list: bool,
}

impl ResetRequest {
    /// Remove every probe.
    pub fn all() -> Self {
        Self {
            pattern: None,
            list: false,
        }
    }

    /// Remove the probes whose pattern matches `glob`.
    pub fn matching(glob: impl Into<String>) -> Self {
        Self {
            pattern: Some(glob.into()),
            list: false,
        }
    }

    /// List the probes; remove nothing.
    pub fn list() -> Self {
        Self {
            pattern: None,
            list: true,
        }
    }
}
