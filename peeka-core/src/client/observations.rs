//! The items of the probe commands' streams.
//!
//! Field names are the wire names of `docs/commands.md` (those of the Python
//! implementation), and serializing a value gives them back unchanged, so a
//! front end can print observations as JSON Lines. Captured values of the
//! target (`params`, `returnObj`, ...) stay [`serde_json::Value`]s: they are
//! renderings chosen by the agent, not typed data. Fields a newer agent adds
//! are kept in `extra` and serialized back as they came.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where in a call an observation of `watch` was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Location {
    /// At entry (`-b`): no result, exception or cost yet.
    AtEnter,
    /// At a normal return (`-s`, `-f`).
    AtExit,
    /// At an exit by exception (`-e`, `-f`).
    AtExceptionExit,
}

/// One observed call of `watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchObservation {
    /// The probed function, e.g. `shop.cart.Cart.total`.
    pub func_name: String,
    /// Entry, return or exception.
    pub location: Location,
    /// Positional arguments, as rendered by the agent.
    #[serde(default)]
    pub params: Value,
    /// Keyword arguments, as rendered by the agent.
    #[serde(default)]
    pub kwargs: Value,
    /// `self` (or `cls`) for methods, else `null`.
    #[serde(default)]
    pub target: Value,
    /// The return value (`null` at entry and on exceptions).
    #[serde(rename = "returnObj", default)]
    pub return_obj: Value,
    /// `"Type: message"` on an exception, else `null`.
    #[serde(rename = "throwExp", default)]
    pub throw_exp: Value,
    /// Whether the call returned normally (`null` at entry).
    #[serde(default)]
    pub success: Option<bool>,
    /// Duration of the call in milliseconds (`null` at entry).
    #[serde(default)]
    pub cost: Option<f64>,
    /// The calling thread's identifier.
    #[serde(default)]
    pub thread_id: u64,
    /// The calling thread's name.
    #[serde(default)]
    pub thread_name: String,
    /// Unix time of the event, in seconds.
    #[serde(default)]
    pub timestamp: f64,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One frame of a `stack` observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    /// The source file.
    pub filename: String,
    /// The line being executed.
    pub lineno: u32,
    /// The function's name.
    pub function: String,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One call seen by `stack`, with its callers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackObservation {
    /// The probed function.
    pub func_name: String,
    /// The calling thread's identifier.
    #[serde(default)]
    pub thread_id: u64,
    /// The calling thread's name.
    #[serde(default)]
    pub thread_name: String,
    /// Unix time of the call, in seconds.
    #[serde(default)]
    pub timestamp: f64,
    /// Positional arguments, as rendered by the agent.
    #[serde(default)]
    pub params: Value,
    /// The callers, innermost first (the probed function is not included).
    #[serde(default)]
    pub stack: Vec<StackFrame>,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `monitor` report: one function, one cycle. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// The monitored function.
    pub func_name: String,
    /// The cycle, from 1.
    pub cycle: u64,
    /// Unix time at the end of the cycle, in seconds.
    #[serde(default)]
    pub timestamp: f64,
    /// Calls in the cycle.
    #[serde(default)]
    pub total: u64,
    /// Calls that returned normally.
    #[serde(default)]
    pub success: u64,
    /// Calls that raised.
    #[serde(default)]
    pub fail: u64,
    /// `fail / total` (0 without calls).
    #[serde(default)]
    pub fail_rate: f64,
    /// Mean duration.
    #[serde(default)]
    pub rt_avg: f64,
    /// Shortest duration.
    #[serde(default)]
    pub rt_min: f64,
    /// Longest duration.
    #[serde(default)]
    pub rt_max: f64,
    /// Median duration.
    #[serde(default)]
    pub rt_p50: f64,
    /// 95th percentile of the durations.
    #[serde(default)]
    pub rt_p95: f64,
    /// 99th percentile of the durations.
    #[serde(default)]
    pub rt_p99: f64,
    /// Fields this version does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_observation_serializes_back_to_the_wire_names() {
        let wire = r#"{"func_name":"shop.cart.Cart.total","location":"AtExit","params":["'A-17'",3],"kwargs":{},"target":"<Cart>","returnObj":"True","throwExp":null,"success":true,"cost":0.153,"thread_id":140241,"thread_name":"MainThread","timestamp":1795000000.25,"future_field":[1]}"#;
        let parsed: WatchObservation = serde_json::from_str(wire).unwrap();
        assert_eq!(parsed.location, Location::AtExit);
        assert_eq!(parsed.cost, Some(0.153));
        assert_eq!(parsed.extra["future_field"], serde_json::json!([1]));
        let back: Value = serde_json::to_value(&parsed).unwrap();
        let original: Value = serde_json::from_str(wire).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn an_entry_observation_has_no_result() {
        let wire = r#"{"func_name":"m.f","location":"AtEnter","params":[],"kwargs":{},"target":null,"returnObj":null,"throwExp":null,"success":null,"cost":null,"thread_id":1,"thread_name":"T","timestamp":1.0}"#;
        let parsed: WatchObservation = serde_json::from_str(wire).unwrap();
        assert_eq!(parsed.success, None);
        assert_eq!(parsed.cost, None);
        let back: Value = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(wire).unwrap());
    }

    #[test]
    fn a_monitor_report_round_trips() {
        let wire = r#"{"func_name":"shop.cart.Cart.total","cycle":1,"timestamp":1795000060.0,"total":1520,"success":1518,"fail":2,"fail_rate":0.0013,"rt_avg":0.21,"rt_min":0.05,"rt_max":3.2,"rt_p50":0.19,"rt_p95":0.4,"rt_p99":1.1}"#;
        let parsed: MonitorReport = serde_json::from_str(wire).unwrap();
        assert_eq!(parsed.total, 1520);
        let back: Value = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(wire).unwrap());
    }
}
