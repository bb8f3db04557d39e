//! Command-specific JSON carried verbatim inside a message.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON value kept as its original text.
///
/// Request parameters, response data and observation data are defined by
/// each command, not by the envelope. Keeping them as raw JSON lets the
/// codec skip building a tree: the typed client parses a payload straight
/// into its own struct with [`Payload::parse`].
///
/// ```
/// use peeka_protocol::Payload;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Cost { cost: f64 }
///
/// let payload = Payload::from_serialize(&Cost { cost: 1.5 })?;
/// assert_eq!(payload.as_str(), r#"{"cost":1.5}"#);
/// assert_eq!(payload.parse::<Cost>()?, Cost { cost: 1.5 });
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// JSON `null`.
    pub fn null() -> Self {
        Self::from_json("null").unwrap_or_else(|_| unreachable!("`null` is valid JSON"))
    }

    /// An empty JSON object, `{}`.
    pub fn empty_object() -> Self {
        Self::from_json("{}").unwrap_or_else(|_| unreachable!("`{{}}` is valid JSON"))
    }

    /// Serializes `value` into a payload.
    ///
    /// # Errors
    /// When `value`'s `Serialize` implementation fails, or produces a map
    /// with non-string keys.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// Wraps JSON text after checking that it is one valid JSON value.
    ///
    /// # Errors
    /// When `json` is not valid JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.to_owned()).map(Self)
    }

    /// Parses the payload into a typed value.
    ///
    /// # Errors
    /// When the JSON does not have the shape of `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text, exactly as received or produced.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Whether the payload is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.0.get().trim() == "null"
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::null()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({})", self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        // Serializing a `Value` cannot fail: its map keys are strings.
        Self::from_serialize(&value).unwrap_or_else(|_| unreachable!("a Value always serializes"))
    }
}
