//! The runtime commands through the typed async client (feature `tokio`),
//! against the real agent in a real target, on every interpreter: every
//! method decodes the agent's real answers, bad input comes back as typed
//! agent errors, and the tracing Peeka started ends with detach. (The
//! blocking `Session` methods are exercised end to end by `peeka-cli`'s
//! tests.)
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

mod common;

use common::{on_every_interpreter, spawn_service};
use peeka_core::client::{
    AllocationQuery, AsyncSession, AttachConfig, ClientError, ErrorCode, GroupBy, InstancesRequest,
    ReferencesRequest, ScRequest, SmRequest,
};
use peeka_testkit::Interpreter;

fn code(error: &ClientError) -> Option<&ErrorCode> {
    error.code()
}

async fn runtime(python: &Interpreter) {
    let id = &python.id;
    let process = spawn_service(python, &[]);
    let (session, _) = AsyncSession::attach(process.pid(), &AttachConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));

    let classes = session
        .sc(&ScRequest::new("__main__.*").detail(true))
        .await
        .unwrap();
    let cart = classes
        .classes
        .iter()
        .find(|c| c.name == "__main__.Cart")
        .unwrap_or_else(|| panic!("{id}: {classes:?}"));
    assert_eq!(
        cart.bases.as_deref(),
        Some(&["object".to_owned()][..]),
        "{id}"
    );
    let methods = session
        .sm(&SmRequest::new("__main__.Cart")
            .method_pattern("add")
            .detail(true))
        .await
        .unwrap();
    assert_eq!(methods.methods.len(), 1, "{id}: {methods:?}");
    assert_eq!(
        methods.methods[0].signature.as_deref(),
        Some("(self, name, price)"),
        "{id}"
    );
    assert_eq!(methods.methods[0].class_name, "__main__.Cart", "{id}");

    let count = session
        .inspect_count(&InstancesRequest::new("__main__.Cart"))
        .await
        .unwrap();
    assert_eq!(count.count, 1, "{id}: {count:?}");
    let found = session
        .inspect_instances(&InstancesRequest::new("Cart").filter("len(obj.items) >= 0"))
        .await
        .unwrap();
    assert_eq!(found.matched, 1, "{id}: {found:?}");
    assert_eq!(found.instances[0].type_name, "__main__.Cart", "{id}");
    let value = session
        .inspect_get("__main__.Cart.total", None)
        .await
        .unwrap_err();
    assert_eq!(code(&value), Some(&ErrorCode::NotFound), "{id}: {value}");
    let bad = session
        .inspect_count(&InstancesRequest::new("__main__.Cart").filter("obj.items +"))
        .await
        .unwrap_err();
    assert_eq!(
        code(&bad),
        Some(&ErrorCode::InvalidExpression),
        "{id}: {bad}"
    );

    // The service never imports logging, and the agent does not either.
    let loggers = session.logger_list(None).await.unwrap();
    assert!(!loggers.logging_imported, "{id}: {loggers:?}");
    let missing = session.logger_get("app").await.unwrap_err();
    assert_eq!(
        code(&missing),
        Some(&ErrorCode::NotFound),
        "{id}: {missing}"
    );

    let overview = session.memory_overview(Some(3)).await.unwrap();
    assert_eq!(overview.types.len(), 3, "{id}");
    assert!(overview.scan.scanned > 0, "{id}");
    let early = session
        .memory_top(&AllocationQuery::new())
        .await
        .unwrap_err();
    assert_eq!(
        code(&early),
        Some(&ErrorCode::InvalidState),
        "{id}: {early}"
    );
    let started = session.memory_start(Some(3)).await.unwrap();
    assert!(started.tracing && !started.already, "{id}: {started:?}");
    let snapshot = session.memory_snapshot().await.unwrap();
    assert_eq!(snapshot.snapshot, 1, "{id}");
    let top = session
        .memory_top(&AllocationQuery::new().group_by(GroupBy::Filename).limit(3))
        .await
        .unwrap();
    assert!(top.stats.len() <= 3, "{id}");
    let diff = session
        .memory_diff(&AllocationQuery::new().group_by(GroupBy::Traceback))
        .await
        .unwrap();
    assert_eq!(diff.group_by, GroupBy::Traceback, "{id}");
    let gc = session.memory_gc().await.unwrap();
    assert_eq!(gc.counts_after.len(), 3, "{id}");
    let tree = session
        .memory_references(&ReferencesRequest::referrers("__main__.Cart").max_depth(1))
        .await
        .unwrap();
    assert_eq!((tree.instances, tree.roots.len()), (1, 1), "{id}: {tree:?}");
    // The tracing Peeka started ends with detach: a new agent sees it off.
    session.detach().await.unwrap();
    let (again, _) = AsyncSession::attach(process.pid(), &AttachConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let after = again.memory_overview(Some(1)).await.unwrap();
    assert_eq!(after.tracemalloc["tracing"], false, "{id}: {after:?}");
    again.detach().await.unwrap();
}

fn on_runtime(python: &Interpreter) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(runtime(python));
}

#[test]
fn runtime_commands_through_the_async_client_on_every_interpreter() {
    on_every_interpreter(on_runtime);
}
