//! The runtime commands: `sc`, `sm`, `inspect`, `logger` and `memory`
//! (requests, typed answers, and the methods of [`Session`] and
//! `AsyncSession`).
//!
//! Each request serializes to exactly the `params` of `docs/commands.md`;
//! options left unset are not sent, so the agent's defaults apply. Every
//! answer keeps the fields this version does not know in `extra`, so it
//! prints back as the agent's JSON.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ClientError;
use super::session::Session;

fn is_false(value: &bool) -> bool {
    !*value
}

// ---------------------------------------------------------------------------
// sc / sm

/// `sc`: search the loaded classes by a glob over `module.QualName`.
///
/// ```
/// use peeka_core::client::ScRequest;
///
/// let request = ScRequest::new("shop.*").detail(true).limit(10);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"pattern":"shop.*","detail":true,"limit":10}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScRequest {
    /// A glob over `module.QualName` (a pattern without a dot also matches
    /// the bare class name).
    pub pattern: String,
    /// Add module file, bases, MRO and method names (`-d`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub detail: bool,
    /// Most classes listed (agent default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl ScRequest {
    /// Classes matching `pattern`.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            detail: false,
            limit: None,
        }
    }

    /// Add the details (`-d`).
    pub fn detail(mut self, on: bool) -> Self {
        self.detail = on;
        self
    }

    /// List at most `n` classes.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// One class found by `sc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// `module.QualName` (`QualName` for builtins).
    pub name: String,
    /// Its `__module__`.
    #[serde(default)]
    pub module: Option<String>,
    /// Its `__qualname__`.
    #[serde(default)]
    pub qualname: Option<String>,
    /// Its module's file (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Full names of its direct bases (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bases: Option<Vec<String>>,
    /// Its method resolution order (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mro: Option<Vec<String>>,
    /// The methods its own namespace defines (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to `sc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSearch {
    /// The classes, sorted by name, at most `limit`.
    pub classes: Vec<ClassInfo>,
    /// Every class that matched.
    #[serde(default)]
    pub total: u64,
    /// Whether the list stopped at `limit`.
    #[serde(default)]
    pub truncated: bool,
    /// Classes looked at.
    #[serde(default)]
    pub scanned: u64,
    /// Whether the walk over the classes stopped at its bound.
    #[serde(default)]
    pub scan_truncated: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `sm`: search the methods of the classes a glob names.
///
/// ```
/// use peeka_core::client::SmRequest;
///
/// let request = SmRequest::new("shop.Cart").method_pattern("t*").detail(true);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"class_pattern":"shop.Cart","method_pattern":"t*","detail":true}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SmRequest {
    /// The classes, as for `sc`.
    pub class_pattern: String,
    /// A glob over method names (agent default `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_pattern: Option<String>,
    /// Add signature, file, line and function kind (`-d`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub detail: bool,
    /// Most methods listed (agent default 100, at most 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl SmRequest {
    /// Every method of the classes matching `class_pattern`.
    pub fn new(class_pattern: impl Into<String>) -> Self {
        Self {
            class_pattern: class_pattern.into(),
            method_pattern: None,
            detail: false,
            limit: None,
        }
    }

    /// Only methods whose name matches `glob`.
    pub fn method_pattern(mut self, glob: impl Into<String>) -> Self {
        self.method_pattern = Some(glob.into());
        self
    }

    /// Add the details (`-d`).
    pub fn detail(mut self, on: bool) -> Self {
        self.detail = on;
        self
    }

    /// List at most `n` methods.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// One method found by `sm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// The class that defines it (`module.QualName`).
    #[serde(rename = "class")]
    pub class_name: String,
    /// The method's name.
    pub name: String,
    /// `method`, `staticmethod`, `classmethod`, `property` or `builtin`.
    pub kind: String,
    /// `(self, a, b=1, *args, **kw)` (with `detail`; null when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Its source file (with `detail`; null for C methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its first line (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// `function`, `coroutine`, `generator` or `async_generator` (with
    /// `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_kind: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to `sm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSearch {
    /// The methods, class by class, at most `limit`.
    pub methods: Vec<MethodInfo>,
    /// Every method that matched.
    #[serde(default)]
    pub total: u64,
    /// Whether the list stopped at `limit`.
    #[serde(default)]
    pub truncated: bool,
    /// How many classes matched `class_pattern`.
    #[serde(default)]
    pub classes: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------
// inspect

/// `inspect --action instances|count`: the live instances of a class.
///
/// ```
/// use peeka_core::client::InstancesRequest;
///
/// let request = InstancesRequest::new("shop.Item").filter("obj.qty > 10").limit(5);
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"class_name":"shop.Item","limit":5,"filter_express":"obj.qty > 10"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstancesRequest {
    /// `module.Class`, a builtin name, or a bare class name that is unique.
    pub class_name: String,
    /// Most instances listed (agent default 10, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Expansion depth of the values (agent default 2, at most 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Only instances for which this safe expression over `obj` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_express: Option<String>,
    /// Run a full garbage collection first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gc_first: bool,
}

impl InstancesRequest {
    /// The instances of `class_name`.
    pub fn new(class_name: impl Into<String>) -> Self {
        Self {
            class_name: class_name.into(),
            limit: None,
            depth: None,
            filter_express: None,
            gc_first: false,
        }
    }

    /// List at most `n` instances.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Expand values `depth` levels deep.
    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }

    /// Only instances for which `expression` (over `obj`) is true.
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.filter_express = Some(expression.into());
        self
    }

    /// Collect garbage before looking.
    pub fn gc_first(mut self, on: bool) -> Self {
        self.gc_first = on;
        self
    }
}

/// How much of the collector's objects a walk covered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScanSummary {
    /// Objects looked at.
    #[serde(default)]
    pub scanned: u64,
    /// Objects the collector tracked.
    #[serde(default)]
    pub tracked: u64,
    /// Whether the walk stopped before the end.
    #[serde(default)]
    pub scan_truncated: bool,
    /// Why it stopped early: `limit`, `time` or `detach`.
    #[serde(default)]
    pub scan_stopped_by: Option<String>,
    /// How long it took, in milliseconds.
    #[serde(default)]
    pub scan_ms: f64,
}

/// A value read by `inspect --action get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectedValue {
    /// The path that was read.
    pub target: String,
    /// The value's type (`module.QualName`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its address, in hexadecimal.
    pub id: String,
    /// The value, captured (see `docs/commands.md`, `watch`).
    pub value: Value,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One instance listed by `inspect --action instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Its address, in hexadecimal.
    pub id: String,
    /// Its exact type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The value, captured.
    pub value: Value,
}

/// The answer to `inspect --action instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instances {
    /// The class, by its full name.
    pub class_name: String,
    /// The instances, at most `limit`.
    pub instances: Vec<InstanceInfo>,
    /// Every instance that matched.
    #[serde(default)]
    pub matched: u64,
    /// Whether the list stopped at `limit`.
    #[serde(default)]
    pub truncated: bool,
    /// Instances on which the filter failed (counted as not matching).
    #[serde(default)]
    pub filter_errors: u64,
    /// The last failure's message.
    #[serde(default)]
    pub last_filter_error: Option<String>,
    /// The walk.
    #[serde(flatten)]
    pub scan: ScanSummary,
}

/// The answer to `inspect --action count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceCount {
    /// The class, by its full name.
    pub class_name: String,
    /// Instances that matched.
    pub count: u64,
    /// Matches per exact type (subclasses apart).
    #[serde(default)]
    pub by_type: Map<String, Value>,
    /// Instances on which the filter failed.
    #[serde(default)]
    pub filter_errors: u64,
    /// The last failure's message.
    #[serde(default)]
    pub last_filter_error: Option<String>,
    /// The walk.
    #[serde(flatten)]
    pub scan: ScanSummary,
}

// ---------------------------------------------------------------------------
// logger

/// One handler of a logger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerInfo {
    /// Its class (`module.QualName`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its name, if set.
    #[serde(default)]
    pub name: Option<String>,
    /// Its level.
    #[serde(default)]
    pub level: Option<i64>,
    /// Its level's name.
    #[serde(default)]
    pub level_name: Option<String>,
    /// The name of its stream (`<stderr>`), for stream handlers.
    #[serde(default)]
    pub stream: Option<String>,
    /// Its file, for file handlers.
    #[serde(default)]
    pub filename: Option<String>,
    /// Its formatter's format string.
    #[serde(default)]
    pub format: Option<String>,
}

/// A logger as `logger --action list` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggerSummary {
    /// Its name (`root` for the root logger).
    pub name: String,
    /// Its own level (0 = NOTSET).
    pub level: i64,
    /// Its own level's name.
    pub level_name: String,
    /// The level that applies (its own, or its nearest ancestor's).
    pub effective_level: i64,
    /// That level's name.
    pub effective_level_name: String,
    /// Whether records go on to the parent's handlers.
    pub propagate: bool,
    /// Whether it is disabled.
    pub disabled: bool,
    /// How many handlers it has.
    pub handlers: u64,
}

/// The answer to `logger --action list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggerList {
    /// The loggers, root first.
    pub loggers: Vec<LoggerSummary>,
    /// Every logger that matched.
    #[serde(default)]
    pub total: u64,
    /// Whether the list stopped at the agent's bound.
    #[serde(default)]
    pub truncated: bool,
    /// The level of `logging.disable()` (0 when unused).
    #[serde(default)]
    pub disable: i64,
    /// Whether the target has imported `logging` at all.
    #[serde(default)]
    pub logging_imported: bool,
}

/// The answer to `logger --action get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggerDetail {
    /// Its name (`root` for the root logger).
    pub name: String,
    /// Its own level (0 = NOTSET).
    pub level: i64,
    /// Its own level's name.
    pub level_name: String,
    /// The level that applies.
    pub effective_level: i64,
    /// That level's name.
    pub effective_level_name: String,
    /// Whether records go on to the parent's handlers.
    pub propagate: bool,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Its handlers.
    pub handlers: Vec<HandlerInfo>,
    /// The level of `logging.disable()`.
    #[serde(default)]
    pub disable: i64,
}

/// The answer to `logger --action set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelChange {
    /// The logger.
    pub name: String,
    /// Its level before.
    pub previous_level: i64,
    /// That level's name.
    pub previous_level_name: String,
    /// Its level now.
    pub level: i64,
    /// That level's name.
    pub level_name: String,
    /// The level that applies now.
    pub effective_level: i64,
    /// That level's name.
    pub effective_level_name: String,
}

// ---------------------------------------------------------------------------
// memory

/// How `memory --action top|diff` groups allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GroupBy {
    /// By the allocating line.
    Lineno,
    /// By file.
    Filename,
    /// By the whole traceback.
    Traceback,
}

/// The options of `memory --action top|diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AllocationQuery {
    /// Grouping (agent default `lineno`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
    /// Most groups listed (agent default 20, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl AllocationQuery {
    /// The agent's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Group by `group_by`.
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = Some(group_by);
        self
    }

    /// List at most `n` groups.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// `memory --action referrers|referents`: reference chains of a class's
/// instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReferencesRequest {
    /// The class of the instances to start from.
    pub type_name: String,
    /// Follow referrers (true) or referents (false); not on the wire.
    #[serde(skip)]
    pub referrers: bool,
    /// Levels followed (agent default 2, 1 to 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Instances, and objects per object and level (agent default 10, 1 to 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_level: Option<u32>,
}

impl ReferencesRequest {
    /// What refers to the instances of `type_name`.
    pub fn referrers(type_name: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            referrers: true,
            max_depth: None,
            max_per_level: None,
        }
    }

    /// What the instances of `type_name` refer to.
    pub fn referents(type_name: impl Into<String>) -> Self {
        Self {
            referrers: false,
            ..Self::referrers(type_name)
        }
    }

    /// Follow `levels` levels.
    pub fn max_depth(mut self, levels: u32) -> Self {
        self.max_depth = Some(levels);
        self
    }

    /// At most `n` objects per object and level.
    pub fn max_per_level(mut self, n: u32) -> Self {
        self.max_per_level = Some(n);
        self
    }
}

/// Object counts and sizes of one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeUsage {
    /// The type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Tracked objects of it.
    pub count: u64,
    /// Their shallow size in bytes.
    pub size: u64,
}

/// The answer to `memory --action overview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryOverview {
    /// Resident memory (null where `/proc` is absent).
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// Peak resident memory.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// Virtual memory size.
    #[serde(default)]
    pub vms_bytes: Option<u64>,
    /// The collector: `enabled`, `counts`, `thresholds`, `collections`,
    /// `collected`, `uncollectable`, `garbage`.
    #[serde(default)]
    pub gc: Value,
    /// tracemalloc: `tracing`, `started_by`, `nframe`, `traced_bytes`,
    /// `peak_bytes`, `snapshot`.
    #[serde(default)]
    pub tracemalloc: Value,
    /// The types using most memory, largest first.
    #[serde(default)]
    pub types: Vec<TypeUsage>,
    /// How many types were seen.
    #[serde(default)]
    pub types_total: u64,
    /// The walk.
    #[serde(flatten)]
    pub scan: ScanSummary,
}

/// The answer to `memory --action start|stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracingState {
    /// Whether tracemalloc traces now.
    pub tracing: bool,
    /// `peeka` or `program` (null when off).
    #[serde(default)]
    pub started_by: Option<String>,
    /// Whether it was already on (`start`).
    #[serde(default)]
    pub already: bool,
    /// Frames kept per allocation.
    #[serde(default)]
    pub nframe: Option<u32>,
}

/// One group of allocations (`top`) or its change (`diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationStat {
    /// The file (of the most recent frame).
    pub filename: String,
    /// The line (null when grouped by file).
    #[serde(default)]
    pub lineno: Option<u32>,
    /// Live bytes.
    pub size: i64,
    /// Live blocks.
    pub count: i64,
    /// Bytes per block (`top`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<i64>,
    /// Change in bytes since the snapshot (`diff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_diff: Option<i64>,
    /// Change in blocks since the snapshot (`diff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_diff: Option<i64>,
    /// The frames, most recent first (grouped by traceback).
    #[serde(default)]
    pub traceback: Option<Vec<Value>>,
}

/// The answer to `memory --action top`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationTop {
    /// The grouping used.
    pub group_by: GroupBy,
    /// The groups, largest first.
    pub stats: Vec<AllocationStat>,
    /// Live traced bytes (the agent's own left out).
    #[serde(default)]
    pub total_size: i64,
    /// Live traced blocks.
    #[serde(default)]
    pub total_count: i64,
    /// Traces read.
    #[serde(default)]
    pub traces: u64,
}

/// The answer to `memory --action snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// The snapshot's number.
    pub snapshot: u64,
    /// Traces it holds.
    #[serde(default)]
    pub traces: u64,
    /// Their bytes.
    #[serde(default)]
    pub total_size: i64,
    /// Unix time.
    #[serde(default)]
    pub taken_at: f64,
}

/// The answer to `memory --action diff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationDiff {
    /// The grouping used.
    pub group_by: GroupBy,
    /// The snapshot compared with.
    pub snapshot: u64,
    /// The changes, largest first.
    pub stats: Vec<AllocationStat>,
    /// Live traced bytes now.
    #[serde(default)]
    pub total_size: i64,
    /// Their change since the snapshot.
    #[serde(default)]
    pub total_size_diff: i64,
    /// Seconds since the snapshot.
    #[serde(default)]
    pub elapsed: f64,
}

/// The answer to `memory --action gc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    /// Objects collected.
    pub collected: u64,
    /// Uncollectable objects found by this collection.
    #[serde(default)]
    pub uncollectable: i64,
    /// Length of `gc.garbage`.
    #[serde(default)]
    pub garbage: u64,
    /// Generation counts before.
    #[serde(default)]
    pub counts_before: Vec<u64>,
    /// Generation counts after.
    #[serde(default)]
    pub counts_after: Vec<u64>,
    /// The thresholds.
    #[serde(default)]
    pub thresholds: Vec<u64>,
    /// How long the collection took.
    #[serde(default)]
    pub elapsed_ms: f64,
    /// `gc.get_stats()`.
    #[serde(default)]
    pub stats: Value,
}

/// One object of a reference tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceNode {
    /// Its address, in hexadecimal.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// A short description.
    pub summary: String,
    /// How it holds (referrers) or is held by (referents) its parent, when
    /// known: `key 'name'`, `[3]`, `attribute name`.
    #[serde(default)]
    pub via: Option<String>,
    /// The next level.
    #[serde(default)]
    pub children: Vec<ReferenceNode>,
}

/// The answer to `memory --action referrers|referents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceTree {
    /// The class, by its full name.
    pub type_name: String,
    /// `referrers` or `referents`.
    pub direction: String,
    /// Instances found.
    #[serde(default)]
    pub instances: u64,
    /// One tree per instance (at most `max_per_level`).
    pub roots: Vec<ReferenceNode>,
    /// The walk that found the instances.
    #[serde(flatten)]
    pub scan: ScanSummary,
}

/// The answer to `memory --action dump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpReport {
    /// The file written, in the target's filesystem.
    pub filename: String,
    /// Its size.
    pub bytes: u64,
    /// Objects listed one by one.
    pub objects: u64,
    /// Types listed.
    pub types: u64,
    /// Whether the object list stopped at its bound.
    pub truncated: bool,
    /// How long it took.
    #[serde(default)]
    pub elapsed_ms: f64,
}

// ---------------------------------------------------------------------------
// Parameters

/// The `params` of one runtime command, with its `action`.
fn with_action<P: Serialize>(
    command: &str,
    action: &str,
    params: &P,
) -> Result<Value, ClientError> {
    let mut value = self::params(command, params)?;
    if let Value::Object(fields) = &mut value {
        fields.insert("action".into(), Value::from(action));
    }
    Ok(value)
}

fn params<P: Serialize>(command: &str, params: &P) -> Result<Value, ClientError> {
    serde_json::to_value(params).map_err(|e| ClientError::InvalidRequest {
        command: command.to_owned(),
        detail: e.to_string(),
    })
}

fn decode<R: DeserializeOwned>(command: &str, data: Value) -> Result<R, ClientError> {
    serde_json::from_value(data).map_err(|e| ClientError::Protocol {
        detail: format!("the answer to `{command}` has an unexpected shape: {e}"),
    })
}

/// One runtime request: command name and params.
struct Call {
    command: &'static str,
    params: Value,
}

fn sc_call(req: &ScRequest) -> Result<Call, ClientError> {
    Ok(Call {
        command: "sc",
        params: params("sc", req)?,
    })
}

fn sm_call(req: &SmRequest) -> Result<Call, ClientError> {
    Ok(Call {
        command: "sm",
        params: params("sm", req)?,
    })
}

fn inspect_get_call(path: &str, depth: Option<u32>) -> Call {
    let mut fields = Map::new();
    fields.insert("action".into(), Value::from("get"));
    fields.insert("target".into(), Value::from(path));
    if let Some(depth) = depth {
        fields.insert("depth".into(), Value::from(depth));
    }
    Call {
        command: "inspect",
        params: Value::Object(fields),
    }
}

fn inspect_call(action: &str, req: &InstancesRequest) -> Result<Call, ClientError> {
    Ok(Call {
        command: "inspect",
        params: with_action("inspect", action, req)?,
    })
}

fn logger_call(action: &str, fields: &[(&str, Option<&str>)]) -> Call {
    let mut params = Map::new();
    params.insert("action".into(), Value::from(action));
    for (name, value) in fields {
        if let Some(value) = value {
            params.insert((*name).into(), Value::from(*value));
        }
    }
    Call {
        command: "logger",
        params: Value::Object(params),
    }
}

fn memory_call(action: &str, fields: Map<String, Value>) -> Call {
    let mut params = fields;
    params.insert("action".into(), Value::from(action));
    Call {
        command: "memory",
        params: Value::Object(params),
    }
}

fn optional(fields: &[(&str, Option<Value>)]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|(name, value)| value.clone().map(|v| ((*name).to_owned(), v)))
        .collect()
}

fn allocation_fields(query: &AllocationQuery) -> Result<Map<String, Value>, ClientError> {
    match params("memory", query)? {
        Value::Object(fields) => Ok(fields),
        _ => Ok(Map::new()),
    }
}

fn references_call(req: &ReferencesRequest) -> Result<Call, ClientError> {
    let action = if req.referrers {
        "referrers"
    } else {
        "referents"
    };
    Ok(Call {
        command: "memory",
        params: with_action("memory", action, req)?,
    })
}

macro_rules! runtime_methods {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty => $call:expr;)*) => {
        impl Session {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// [`ClientError::Agent`] with the agent's code
                /// (`invalid_params`, `not_found` with close matches,
                /// `invalid_expression`, `invalid_state` naming the fix),
                /// and as [`Session::ping`].
                pub fn $name(&self, $($arg: $ty),*) -> Result<$out, ClientError> {
                    let call: Call = $call;
                    let data = self.request(call.command, call.params)?;
                    decode(call.command, data)
                }
            )*
        }

        #[cfg(feature = "tokio")]
        impl super::AsyncSession {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// As the [`Session`] method of the same name.
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$out, ClientError> {
                    let call: Call = $call;
                    let data = self.request(call.command, call.params).await?;
                    decode(call.command, data)
                }
            )*
        }
    };
}

runtime_methods! {
    /// `sc`: the loaded classes matching a glob.
    fn sc(req: &ScRequest) -> ClassSearch => sc_call(req)?;
    /// `sm`: the methods of the classes matching a glob.
    fn sm(req: &SmRequest) -> MethodSearch => sm_call(req)?;
    /// `inspect --action get`: the value at `path` (`module.attr[0]['key']`),
    /// read without running the target's code, expanded `depth` levels.
    fn inspect_get(path: &str, depth: Option<u32>) -> InspectedValue => inspect_get_call(path, depth);
    /// `inspect --action instances`: live instances of a class.
    fn inspect_instances(req: &InstancesRequest) -> Instances => inspect_call("instances", req)?;
    /// `inspect --action count`: how many live instances a class has.
    fn inspect_count(req: &InstancesRequest) -> InstanceCount => inspect_call("count", req)?;
    /// `logger --action list`: the target's loggers (those whose name
    /// matches `pattern`, a glob, when given).
    fn logger_list(pattern: Option<&str>) -> LoggerList => logger_call("list", &[("pattern", pattern)]);
    /// `logger --action get`: one logger (`root` for the root logger).
    fn logger_get(name: &str) -> LoggerDetail => logger_call("get", &[("logger", Some(name))]);
    /// `logger --action set`: sets a logger's level (`DEBUG`, `info`, `10`...);
    /// it applies to the target's next log call and stays after detach.
    fn logger_set(name: &str, level: &str) -> LevelChange =>
        logger_call("set", &[("logger", Some(name)), ("level", Some(level))]);
    /// `memory --action overview`: memory figures, the collector, the
    /// types using most memory (at most `limit`).
    fn memory_overview(limit: Option<u32>) -> MemoryOverview =>
        memory_call("overview", optional(&[("limit", limit.map(Value::from))]));
    /// `memory --action start`: starts tracemalloc (`nframe` frames per
    /// allocation); Peeka stops it at detach.
    fn memory_start(nframe: Option<u32>) -> TracingState =>
        memory_call("start", optional(&[("nframe", nframe.map(Value::from))]));
    /// `memory --action stop`: stops the tracemalloc Peeka started.
    fn memory_stop() -> TracingState => memory_call("stop", Map::new());
    /// `memory --action top`: the live allocations, grouped, largest first.
    fn memory_top(query: &AllocationQuery) -> AllocationTop => memory_call("top", allocation_fields(query)?);
    /// `memory --action snapshot`: records the baseline of `memory_diff`.
    fn memory_snapshot() -> SnapshotTaken => memory_call("snapshot", Map::new());
    /// `memory --action diff`: the allocations now against the snapshot.
    fn memory_diff(query: &AllocationQuery) -> AllocationDiff => memory_call("diff", allocation_fields(query)?);
    /// `memory --action gc`: one full collection, reported.
    fn memory_gc() -> GcReport => memory_call("gc", Map::new());
    /// `memory --action referrers|referents`: reference trees of a
    /// class's instances.
    fn memory_references(req: &ReferencesRequest) -> ReferenceTree => references_call(req)?;
    /// `memory --action dump`: writes the heap to `filename` (in the
    /// target's filesystem; a fresh name in `/tmp` when `None`).
    fn memory_dump(filename: Option<&str>) -> DumpReport =>
        memory_call("dump", optional(&[("filename", filename.map(Value::from))]));
}
