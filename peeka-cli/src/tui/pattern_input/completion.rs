//! Completion of patterns from the target: what the text typed so far can
//! continue with (modules, classes, functions, methods), asked of the agent
//! by one background task per input box.
//!
//! The text decides the [`Query`]: without a dot, the loaded classes whose
//! module or full name starts with it (`sc` with the glob `text*`); with a
//! dot, the members of what comes before the last dot (`prefix`): the
//! classes below it (`sc prefix.*`, which also reveals submodules), its
//! methods when it is a class (`sm prefix`), and its functions, classes and
//! submodules when it is a module (the module's namespace read as data with
//! `inspect get prefix.__dict__`, one level deep). Answers are kept per
//! query (a few), so typing within one scope filters locally without asking
//! again.
//!
//! The task debounces (it waits [`DEBOUNCE`] after a change and then asks
//! for the latest text only), has one request in flight at a time, and ends
//! when its input box is dropped.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use peeka_core::client::{AsyncSession, ClientError, ScRequest, SmRequest};
use serde_json::Value;
use tokio::sync::watch;

/// How long the task waits after a change before asking.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(150);

/// Most classes or methods asked for per query.
const LIMIT: u32 = 1000;

/// Answers kept.
const CACHED_QUERIES: usize = 16;

/// Most candidates kept per answer.
const MAX_CANDIDATES: usize = 2000;

/// What a candidate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// A module or package.
    Module,
    /// A class.
    Class,
    /// A module-level function.
    Function,
    /// A method (or property getter) of a class.
    Method,
}

impl Kind {
    /// A short label for the popup.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Class => "class",
            Self::Function => "function",
            Self::Method => "method",
        }
    }
}

/// One possible continuation: the whole pattern up to the end of the next
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    /// The full text (`shop.cart.Cart`).
    pub(super) text: String,
    /// What it names.
    pub(super) kind: Kind,
}

/// What to ask the target for a given text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Query {
    /// Names starting with this text (no dot typed yet).
    Top(String),
    /// The members of this module or class (the text before the last dot).
    Members(String),
}

impl Query {
    /// The query for `text`, or `None` when there is nothing to complete
    /// (empty, a glob, spaces).
    pub(super) fn for_text(text: &str) -> Option<Query> {
        if text.is_empty()
            || text
                .chars()
                .any(|c| matches!(c, '*' | '?' | '[' | ']') || c.is_whitespace())
        {
            return None;
        }
        match text.rfind('.') {
            Some(0) => None,
            Some(dot) => Some(Query::Members(text[..dot].to_owned())),
            None => Some(Query::Top(text.to_owned())),
        }
    }
}

/// The target's answer to one query.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// Every candidate found, sorted, without duplicates.
    pub(super) candidates: Vec<Candidate>,
    /// Whether the target listed everything (no limit reached), so a longer
    /// text of the same query can be filtered locally.
    pub(super) complete: bool,
}

/// Answers by query, the newest last; a few at most.
#[derive(Debug, Default)]
pub(super) struct Cache {
    entries: Vec<(Query, Answer)>,
}

impl Cache {
    /// Keeps `answer` for `query`, forgetting the oldest beyond the bound.
    pub(super) fn insert(&mut self, query: Query, answer: Answer) {
        self.entries.retain(|(q, _)| *q != query);
        self.entries.push((query, answer));
        if self.entries.len() > CACHED_QUERIES {
            self.entries.remove(0);
        }
    }

    /// The answer that covers `query`: its own, or for a top-level text, a
    /// complete answer for a shorter text it extends.
    pub(super) fn lookup(&self, query: &Query) -> Option<&Answer> {
        self.entries.iter().rev().find_map(|(q, answer)| {
            let covers = match (q, query) {
                (Query::Top(known), Query::Top(wanted)) => {
                    known == wanted || (answer.complete && wanted.starts_with(known.as_str()))
                }
                (q, query) => q == query,
            };
            covers.then_some(answer)
        })
    }
}

/// The candidates of `answer` that continue `text`: starting with it (but
/// not equal to it), names starting with `_` only when `_` was typed.
pub(super) fn matching<'a>(answer: &'a Answer, text: &str) -> Vec<&'a Candidate> {
    let typed_last = text.rsplit('.').next().unwrap_or("");
    let private_ok = typed_last.starts_with('_');
    answer
        .candidates
        .iter()
        .filter(|c| c.text.len() > text.len() && c.text.starts_with(text))
        .filter(|c| private_ok || !c.text.rsplit('.').next().unwrap_or("").starts_with('_'))
        .collect()
}

/// The input box's end of the completion task.
#[derive(Debug)]
pub(super) struct Completer {
    queries: watch::Sender<Option<Query>>,
    answers: mpsc::Receiver<(Query, Result<Answer, String>)>,
}

impl Completer {
    /// Starts the task on `runtime`.
    pub(super) fn start(session: Arc<AsyncSession>, runtime: &tokio::runtime::Handle) -> Self {
        let (queries, wanted) = watch::channel(None);
        let (found, answers) = mpsc::channel();
        runtime.spawn(complete_task(session, wanted, found));
        Self { queries, answers }
    }

    /// Asks for `query` (replacing any query not yet asked).
    pub(super) fn ask(&self, query: Query) {
        self.queries.send_replace(Some(query));
    }

    /// The next answer that arrived, if any.
    pub(super) fn try_answer(&self) -> Option<(Query, Result<Answer, String>)> {
        self.answers.try_recv().ok()
    }
}

async fn complete_task(
    session: Arc<AsyncSession>,
    mut wanted: watch::Receiver<Option<Query>>,
    found: mpsc::Sender<(Query, Result<Answer, String>)>,
) {
    while wanted.changed().await.is_ok() {
        tokio::time::sleep(DEBOUNCE).await;
        let Some(query) = wanted.borrow_and_update().clone() else {
            continue;
        };
        let answer = ask(&session, &query).await.map_err(|e| e.to_string());
        if found.send((query, answer)).is_err() {
            return;
        }
    }
}

async fn ask(session: &AsyncSession, query: &Query) -> Result<Answer, ClientError> {
    match query {
        Query::Top(text) => {
            let found = session
                .sc(&ScRequest::new(format!("{text}*")).limit(LIMIT))
                .await?;
            let mut candidates = Vec::new();
            for class in &found.classes {
                let Some(module) = class.module.as_deref().filter(|m| *m != "builtins") else {
                    continue;
                };
                for name in [module, class.name.as_str()] {
                    if let Some(candidate) = next_name("", text, name, module) {
                        candidates.push(candidate);
                    }
                }
            }
            Ok(answer(
                candidates,
                !found.truncated && !found.scan_truncated,
            ))
        }
        Query::Members(prefix) => members(session, prefix).await,
    }
}

async fn members(session: &AsyncSession, prefix: &str) -> Result<Answer, ClientError> {
    let mut candidates = Vec::new();
    let mut first_error = None;
    let mut complete = true;
    match session
        .sc(&ScRequest::new(format!("{prefix}.*")).limit(LIMIT))
        .await
    {
        Ok(found) => {
            complete &= !found.truncated && !found.scan_truncated;
            for class in &found.classes {
                let module = class.module.as_deref().unwrap_or("");
                if let Some(candidate) = next_name(prefix, "", &class.name, module) {
                    candidates.push(candidate);
                }
            }
        }
        Err(e) => first_error = Some(e),
    }
    match session.sm(&SmRequest::new(prefix).limit(LIMIT)).await {
        Ok(found) => {
            complete &= !found.truncated;
            candidates.extend(
                found
                    .methods
                    .iter()
                    .filter(|m| m.class_name == prefix)
                    .map(|m| Candidate {
                        text: format!("{prefix}.{}", m.name),
                        kind: Kind::Method,
                    }),
            );
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    // A module's namespace: its functions (and what `sc` cannot see: classes
    // imported into it, submodules without classes). A class, or anything
    // else, answers not_found here, which only means "not a module".
    if let Ok(namespace) = session
        .inspect_get(&format!("{prefix}.__dict__"), Some(1))
        .await
    {
        candidates.extend(namespace_members(prefix, &namespace.value));
    }
    if candidates.is_empty() {
        if let Some(error) = first_error {
            return Err(error);
        }
    }
    Ok(answer(candidates, complete))
}

/// The functions, classes and modules of a module's namespace, captured as
/// `{name: "<function f at 0x..>", ...}`.
pub(super) fn namespace_members(prefix: &str, namespace: &Value) -> Vec<Candidate> {
    let Value::Object(fields) = namespace else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|(name, _)| !name.starts_with('@') && !name.contains(['.', '[']))
        .filter_map(|(name, value)| {
            let text = value.as_str()?;
            let kind = if text.starts_with("<function ") {
                Kind::Function
            } else if text.starts_with("<class '") {
                Kind::Class
            } else if text.starts_with("<module '") {
                Kind::Module
            } else {
                return None;
            };
            Some(Candidate {
                text: format!("{prefix}.{name}"),
                kind,
            })
        })
        .collect()
}

/// The candidate `name` gives for a text: `name` cut after the first name
/// that goes beyond `scope.typed` (`scope` empty at top level), as a module
/// when that cut is `module` or one of its packages, else as a class.
pub(super) fn next_name(scope: &str, typed: &str, name: &str, module: &str) -> Option<Candidate> {
    let start = if scope.is_empty() { 0 } else { scope.len() + 1 };
    let inside = scope.is_empty()
        || (name.starts_with(scope) && name.as_bytes().get(scope.len()) == Some(&b'.'));
    if !inside {
        return None;
    }
    let rest = name.get(start..)?;
    if !rest.starts_with(typed) || rest.is_empty() {
        return None;
    }
    let end = rest[typed.len()..]
        .find('.')
        .map_or(name.len(), |dot| start + typed.len() + dot);
    let text = &name[..end];
    let is_module =
        module == text || (module.starts_with(text) && module.as_bytes().get(end) == Some(&b'.'));
    Some(Candidate {
        text: text.to_owned(),
        kind: if is_module { Kind::Module } else { Kind::Class },
    })
}

fn answer(mut candidates: Vec<Candidate>, complete: bool) -> Answer {
    candidates.sort_by(|a, b| a.text.cmp(&b.text).then(a.kind.cmp(&b.kind)));
    candidates.dedup_by(|a, b| a.text == b.text);
    let complete = complete && candidates.len() <= MAX_CANDIDATES;
    candidates.truncate(MAX_CANDIDATES);
    Answer {
        candidates,
        complete,
    }
}

#[cfg(test)]
pub(super) fn answer_for_tests(candidates: Vec<Candidate>) -> Answer {
    answer(candidates, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_follow_the_last_dot() {
        assert_eq!(Query::for_text("sh"), Some(Query::Top("sh".into())));
        assert_eq!(
            Query::for_text("shop.cart.Ca"),
            Some(Query::Members("shop.cart".into()))
        );
        assert_eq!(
            Query::for_text("shop."),
            Some(Query::Members("shop".into()))
        );
        assert_eq!(Query::for_text(""), None);
        assert_eq!(Query::for_text("shop.*"), None);
        assert_eq!(Query::for_text(".x"), None);
    }

    #[test]
    fn class_names_complete_one_name_at_a_time() {
        let module = |text: &str| Candidate {
            text: text.into(),
            kind: Kind::Module,
        };
        let class = |text: &str| Candidate {
            text: text.into(),
            kind: Kind::Class,
        };
        assert_eq!(
            next_name("", "sh", "shop.cart.Cart", "shop.cart"),
            Some(module("shop"))
        );
        assert_eq!(
            next_name("", "shop.c", "shop.cart.Cart", "shop.cart"),
            Some(module("shop.cart"))
        );
        assert_eq!(
            next_name("shop.cart", "", "shop.cart.Cart", "shop.cart"),
            Some(class("shop.cart.Cart"))
        );
        assert_eq!(
            next_name("shop", "", "shop.Outer.Inner", "shop"),
            Some(class("shop.Outer"))
        );
        assert_eq!(next_name("shop", "", "shopping.Cart", "shopping"), None);
        assert_eq!(next_name("", "x", "shop.Cart", "shop"), None);
    }

    #[test]
    fn a_module_namespace_gives_functions_classes_and_modules() {
        let namespace = serde_json::json!({
            "__name__": "demo", "os": "<module 'os' (frozen)>",
            "checkout": "<function checkout at 0x7f2304>", "Cart": "<class 'demo.Cart'>",
            "LIMIT": 3, "@more": "<5 more items of 105>"
        });
        let found = namespace_members("demo", &namespace);
        let texts: Vec<_> = found.iter().map(|c| (c.text.as_str(), c.kind)).collect();
        assert_eq!(
            texts,
            [
                ("demo.Cart", Kind::Class),
                ("demo.checkout", Kind::Function),
                ("demo.os", Kind::Module)
            ]
        );
    }

    #[test]
    fn complete_top_level_answers_cover_longer_texts() {
        let mut cache = Cache::default();
        let found = answer_for_tests(vec![Candidate {
            text: "shop".into(),
            kind: Kind::Module,
        }]);
        cache.insert(Query::Top("s".into()), found.clone());
        assert!(cache.lookup(&Query::Top("sho".into())).is_some());
        assert!(cache.lookup(&Query::Members("s".into())).is_none());
        let partial = Answer {
            complete: false,
            ..found
        };
        cache.insert(Query::Top("a".into()), partial);
        assert!(cache.lookup(&Query::Top("ab".into())).is_none());
        for n in 0..40 {
            cache.insert(
                Query::Members(format!("m{n}")),
                answer_for_tests(Vec::new()),
            );
        }
        assert_eq!(cache.entries.len(), CACHED_QUERIES);
    }

    #[test]
    fn private_names_only_when_asked_for() {
        let found = answer_for_tests(vec![
            Candidate {
                text: "m._hidden".into(),
                kind: Kind::Function,
            },
            Candidate {
                text: "m.shown".into(),
                kind: Kind::Function,
            },
        ]);
        let texts = |typed: &str| -> Vec<String> {
            matching(&found, typed)
                .iter()
                .map(|c| c.text.clone())
                .collect()
        };
        assert_eq!(texts("m."), ["m.shown"]);
        assert_eq!(texts("m._"), ["m._hidden"]);
        assert!(texts("m.shown").is_empty());
    }
}
