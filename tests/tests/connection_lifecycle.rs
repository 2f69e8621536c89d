//! The connection core under the conditions that used to wedge it: uploads behind a busy
//! invocation slot, several uploads on one connection, a client that vanishes mid-upload,
//! an upload over the connection's buffer; and what `on_disconnected` is told.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hubs::protocol::{Completion, HubMessage, Invocation, Outcome, Protocol, StreamItem, Value};
use hubs::testing::TestServer;
use hubs::{Context, HubError, HubOptions, Server, Stream, UploadStream, hub};
use hubs_tests::{RawClient, STEP, interop_in_process, serve};
use tokio::sync::mpsc;

fn item(id: &str, value: Value) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        headers: Default::default(),
        invocation_id: id.to_owned(),
        item: value,
    })
}

fn upload_invocation(id: &str, target: &str, stream_id: &str) -> HubMessage {
    HubMessage::Invocation(Invocation {
        invocation_id: Some(id.to_owned()),
        target: target.to_owned(),
        stream_ids: vec![stream_id.to_owned()],
        ..Default::default()
    })
}

/// The Completions of the given invocation ids, in arrival order (other messages are
/// skipped; client-result Invocations are returned to `on_invocation`).
async fn completions(
    client: &mut RawClient,
    ids: &[&str],
    mut on_invocation: impl FnMut(Invocation) -> Option<HubMessage>,
) -> Vec<Completion> {
    let mut done = Vec::new();
    while done.len() < ids.len() {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) if ids.contains(&c.invocation_id.as_str()) => {
                done.push(c);
            }
            Some(HubMessage::Invocation(invocation)) => {
                if let Some(reply) = on_invocation(invocation) {
                    client.send(&reply).await;
                }
            }
            Some(_) => {}
            None => panic!("closed with {} of {} completions", done.len(), ids.len()),
        }
    }
    done
}

/// The outcomes of the calls `ids`, asserting they are answered in that order (other
/// messages are skipped).
async fn answered_in_order(
    client: &mut RawClient,
    ids: &[String],
    protocol: Protocol,
) -> Vec<Outcome> {
    let mut order = Vec::new();
    let mut outcomes = Vec::new();
    while order.len() < ids.len() {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) => {
                order.push(c.invocation_id);
                outcomes.push(c.outcome);
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert_eq!(order, ids, "{protocol}: answered in order");
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_behind_a_slot_busy_with_a_client_result_completes() {
    let server = interop_in_process();
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/testhub", protocol).await;
        // InvokeCaller holds the only slot (max_parallel_invocations = 1) until this client
        // answers its `Result` invocation.
        let value = client.value(42);
        let busy = client.invoke("InvokeCaller", vec![value]).await;
        let asked = match client.next_message().await {
            Some(HubMessage::Invocation(invocation)) if invocation.target == "Result" => {
                invocation.invocation_id.expect("a client result has an id")
            }
            other => panic!("expected the Result invocation, got {other:?}"),
        };
        // StreamingConcat waits for the slot; its 30 items must not stop the server from
        // reading the Completion that frees it.
        client
            .send(&upload_invocation("concat", "StreamingConcat", "u"))
            .await;
        for _ in 0..30 {
            let value = client.value("x");
            client.send(&item("u", value)).await;
        }
        client
            .send(&HubMessage::Completion(Completion::void("u")))
            .await;
        let answer = client.value(42);
        client
            .send(&HubMessage::Completion(Completion::result(asked, answer)))
            .await;
        let done = completions(&mut client, &[&busy, "concat"], |_| None).await;
        assert_eq!(done[0].invocation_id, busy);
        assert_eq!(done[0].outcome, Outcome::Result(client.value(42)));
        assert_eq!(
            done[1].outcome,
            Outcome::Result(client.value("x".repeat(30)))
        );
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_uploads_on_one_connection_complete() {
    let server = interop_in_process();
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/testhub", protocol).await;
        client
            .send(&upload_invocation("one", "StreamingConcat", "a"))
            .await;
        client
            .send(&upload_invocation("two", "StreamingConcat", "b"))
            .await;
        for _ in 0..30 {
            let a = client.value("a");
            client.send(&item("a", a)).await;
            let b = client.value("b");
            client.send(&item("b", b)).await;
        }
        client
            .send(&HubMessage::Completion(Completion::void("b")))
            .await;
        client
            .send(&HubMessage::Completion(Completion::void("a")))
            .await;
        let done = completions(&mut client, &["one", "two"], |_| None).await;
        for completion in done {
            let expected = match completion.invocation_id.as_str() {
                "one" => "a".repeat(30),
                _ => "b".repeat(30),
            };
            assert_eq!(completion.outcome, Outcome::Result(client.value(expected)));
        }
        client.close().await;
    }
}

/// What a [`Watched`] hub reports to its test.
#[derive(Debug)]
enum Seen {
    Disconnected(Option<String>),
    UploadEnded(Result<usize, String>),
}

struct Watched {
    seen: mpsc::UnboundedSender<Seen>,
}

#[hub]
impl Watched {
    /// Counts the items of an upload, reporting how the upload ended.
    pub(crate) async fn count(&self, mut items: UploadStream<String>) -> Result<usize, HubError> {
        let mut count = 0;
        let ended = loop {
            match items.next().await {
                Some(Ok(_)) => count += 1,
                Some(Err(error)) => break Err(error),
                None => break Ok(count),
            }
        };
        let _ = self.seen.send(Seen::UploadEnded(
            ended.clone().map_err(|e| e.message().to_owned()),
        ));
        ended
    }

    /// Asks the caller to acknowledge each item as it takes it.
    pub(crate) async fn acknowledge(
        &self,
        cx: &Context<Self>,
        mut items: UploadStream<String>,
    ) -> Result<usize, HubError> {
        let mut count = 0;
        while let Some(item) = items.next().await {
            let item = item?;
            let _: String = cx.clients().caller().invoke("Ack", (item,)).await?;
            count += 1;
        }
        Ok(count)
    }

    /// Streams two numbers, then its stream panics.
    pub(crate) fn fragile(&self) -> impl Stream<Item = u32> + use<> {
        futures_util::stream::iter(0..3).map(|n| {
            assert!(n < 2, "the stream broke");
            n
        })
    }

    /// A plain `fn`: it runs on the read loop (no task), and may panic.
    pub(crate) fn divide(&self, a: u32, b: u32) -> u32 {
        a / b
    }

    /// The task it runs on, from a plain `fn`: the connection's read loop.
    pub(crate) fn loop_task(&self) -> String {
        tokio::task::id().to_string()
    }

    /// An `async fn` that may finish without waiting, wait first, or panic before it
    /// waits; it answers with the task it finished on.
    pub(crate) async fn settle(&self, wait_ms: u64, panic: bool) -> String {
        assert!(!panic, "settle panicked");
        if wait_ms > 0 {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
        tokio::task::id().to_string()
    }

    /// Holds the slot until the client answers.
    pub(crate) async fn hold(&self, cx: &Context<Self>) -> Result<String, HubError> {
        cx.clients().caller().invoke("Release", ()).await
    }

    pub(crate) async fn on_disconnected(&self, error: Option<HubError>) {
        let _ = self
            .seen
            .send(Seen::Disconnected(error.map(|e| e.message().to_owned())));
    }
}

/// The watched hub over TCP: for the tests of what a lost transport does.
async fn watched(options: HubOptions) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let service = Server::new()
        .hub_with("/watched", Watched { seen }, options)
        .build()
        .expect("builds");
    (serve(service).await, rx)
}

/// The watched hub in process.
fn watched_in_process(options: HubOptions) -> (TestServer, mpsc::UnboundedReceiver<Seen>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let server = TestServer::new(Server::new().hub_with("/watched", Watched { seen }, options))
        .expect("builds");
    (server, rx)
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>, within: Duration) -> Seen {
    tokio::time::timeout(within, seen.recv())
        .await
        .expect("the hub reported in time")
        .expect("the hub is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_upload_is_released_within_the_client_timeout() {
    let client_timeout = Duration::from_secs(2);
    let (addr, mut seen) = watched(
        HubOptions::default()
            .keep_alive_interval(Duration::from_millis(500))
            .client_timeout(client_timeout),
    )
    .await;
    let mut client = RawClient::connect(addr, "/watched", Protocol::Json).await;
    // A first Ping arms the client timeout, as every official client sends one.
    client.send(&HubMessage::Ping).await;
    client.send(&upload_invocation("1", "Count", "u")).await;
    for _ in 0..25 {
        let value = client.value("x");
        client.send(&item("u", value)).await;
    }
    // The client goes silent without closing anything: the socket stays open. The
    // upload's method and on_disconnected report, in either order.
    let (mut ended, mut disconnected) = (None, None);
    for _ in 0..2 {
        match next(&mut seen, client_timeout + STEP).await {
            Seen::UploadEnded(result) => ended = Some(result),
            Seen::Disconnected(error) => disconnected = Some(error),
        }
    }
    assert_eq!(
        ended.expect("the upload ended"),
        Err(hubs::protocol::wire::UPLOAD_CONNECTION_ENDED.to_owned()),
        "an unfinished upload never looks complete"
    );
    let error = disconnected
        .expect("on_disconnected ran")
        .expect("a timeout is an error");
    assert!(
        error.starts_with("Connection closed with an error."),
        "{error}"
    );
    // The client got the Close (reconnect allowed) before the socket closed.
    let mut closed_with = None;
    while let Some(message) = client.next_message().await {
        if let HubMessage::Close(close) = message {
            closed_with = Some(close);
        }
    }
    let close = closed_with.expect("a Close message");
    assert!(close.allow_reconnect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disconnected_gets_an_error_when_the_transport_is_lost() {
    let (addr, mut seen) = watched(HubOptions::default()).await;

    // The socket goes away without a WebSocket close frame or a hub Close.
    let client = RawClient::connect(addr, "/watched", Protocol::Json).await;
    drop(client);
    let Seen::Disconnected(error) = next(&mut seen, STEP).await else {
        panic!("expected on_disconnected");
    };
    assert!(error.is_some(), "a lost transport is an error");

    // A clean close of the transport (a close frame) is not an error.
    let client = RawClient::connect(addr, "/watched", Protocol::Json).await;
    client.close().await;
    let Seen::Disconnected(error) = next(&mut seen, STEP).await else {
        panic!("expected on_disconnected");
    };
    assert_eq!(error, None);

    // Neither is a hub Close from the client; its error is passed on.
    let mut client = RawClient::connect(addr, "/watched", Protocol::Json).await;
    client
        .send(&HubMessage::Close(hubs::protocol::Close {
            error: Some("bye".into()),
            allow_reconnect: false,
        }))
        .await;
    let Seen::Disconnected(error) = next(&mut seen, STEP).await else {
        panic!("expected on_disconnected");
    };
    assert_eq!(error.as_deref(), Some("bye"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_lost_mid_invocation_tears_the_connection_down_at_once() {
    let (addr, mut seen) = watched(HubOptions::default()).await;
    let mut client = RawClient::connect(addr, "/watched", Protocol::Json).await;
    // Hold waits for a client result (30 s by default) and an upload waits behind it.
    client.invoke("Hold", vec![]).await;
    client.send(&upload_invocation("2", "Count", "u")).await;
    match client.next_message().await {
        Some(HubMessage::Invocation(invocation)) => assert_eq!(invocation.target, "Release"),
        other => panic!("expected the Release invocation, got {other:?}"),
    }
    drop(client);
    // Torn down at once, whatever the invocations were doing: the queued upload fails
    // (its method never ran) and on_disconnected runs well within the client timeout.
    let Seen::Disconnected(error) = next(&mut seen, Duration::from_secs(5)).await else {
        panic!("expected on_disconnected");
    };
    assert!(error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_connection_buffer_fails_alone() {
    let (server, mut seen) = watched_in_process(HubOptions::default().max_upload_buffer(4096));
    let mut client = RawClient::in_process(&server, "/watched", Protocol::MessagePack).await;
    // The upload waits behind Hold, so nothing drains it.
    let hold = client.invoke("Hold", vec![]).await;
    let asked = match client.next_message().await {
        Some(HubMessage::Invocation(invocation)) => invocation.invocation_id.expect("an id"),
        other => panic!("expected the Release invocation, got {other:?}"),
    };
    client.send(&upload_invocation("big", "Count", "u")).await;
    let chunk = "y".repeat(1000);
    for _ in 0..10 {
        let value = client.value(&chunk);
        client.send(&item("u", value)).await;
    }
    client
        .send(&HubMessage::Completion(Completion::void("u")))
        .await;
    // The connection still reads: the client result arrives and frees the slot.
    let released = client.value("released");
    client
        .send(&HubMessage::Completion(Completion::result(asked, released)))
        .await;
    let done = completions(&mut client, &[&hold, "big"], |_| None).await;
    assert_eq!(done[0].outcome, Outcome::Result(client.value("released")));
    let Outcome::Error(text) = &done[1].outcome else {
        panic!("the overflowing upload fails: {:?}", done[1].outcome);
    };
    assert!(
        text.starts_with("An unexpected error occurred invoking 'Count' on the server. HubException: Client stream 'u' exceeded the 4096-byte upload buffer"),
        "{text}"
    );
    assert!(matches!(
        next(&mut seen, STEP).await,
        Seen::UploadEnded(Err(_))
    ));
    // And the connection carries on.
    client.send(&upload_invocation("small", "Count", "v")).await;
    let value = client.value("z");
    client.send(&item("v", value)).await;
    client
        .send(&HubMessage::Completion(Completion::void("v")))
        .await;
    let done = completions(&mut client, &["small"], |_| None).await;
    assert_eq!(done[0].outcome, Outcome::Result(client.value(1)));
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_that_asks_its_caller_per_upload_item_is_not_held_up() {
    let (server, _seen) = watched_in_process(HubOptions::default());
    let mut client = RawClient::in_process(&server, "/watched", Protocol::Json).await;
    client
        .send(&upload_invocation("1", "Acknowledge", "u"))
        .await;
    // Everything at once: the upload is far over its 10-item buffer while the method
    // waits for each acknowledgement, which must still be read promptly.
    // (The upload stays open until the last acknowledgement: a completed upload is never
    // waited for.)
    for n in 0..40 {
        let value = client.value(format!("item {n}"));
        client.send(&item("u", value)).await;
    }
    let done = tokio::time::timeout(Duration::from_secs(8), async {
        let mut acknowledged = 0;
        loop {
            match client.next_message().await {
                Some(HubMessage::Invocation(invocation)) => {
                    let id = invocation.invocation_id.expect("a client result");
                    let ack = client.value("ok");
                    client
                        .send(&HubMessage::Completion(Completion::result(id, ack)))
                        .await;
                    acknowledged += 1;
                    if acknowledged == 40 {
                        client
                            .send(&HubMessage::Completion(Completion::void("u")))
                            .await;
                    }
                }
                Some(HubMessage::Completion(c)) if c.invocation_id == "1" => return c,
                Some(_) => {}
                None => panic!("closed"),
            }
        }
    })
    .await
    .expect("40 acknowledged items do not wait a second each");
    assert_eq!(done.outcome, Outcome::Result(client.value(40)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_panics_ends_with_an_error_and_the_connection_stays() {
    let (server, _seen) = watched_in_process(HubOptions::default());
    let mut client = RawClient::in_process(&server, "/watched", Protocol::Json).await;
    client
        .send(&HubMessage::StreamInvocation(
            hubs::protocol::StreamInvocation {
                headers: Default::default(),
                invocation_id: "s".into(),
                target: "Fragile".into(),
                arguments: vec![],
                stream_ids: vec![],
            },
        ))
        .await;
    let mut items = 0;
    let outcome = loop {
        match client.next_message().await {
            Some(HubMessage::StreamItem(_)) => items += 1,
            Some(HubMessage::Completion(c)) => break c.outcome,
            Some(_) => {}
            None => panic!("closed"),
        }
    };
    assert_eq!(items, 2);
    assert_eq!(
        outcome,
        Outcome::Error("An error occurred on the server while streaming results.".into())
    );
    client.send(&upload_invocation("c", "Count", "v")).await;
    client
        .send(&HubMessage::Completion(Completion::void("v")))
        .await;
    let done = completions(&mut client, &["c"], |_| None).await;
    assert_eq!(done[0].outcome, Outcome::Result(client.value(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_methods_run_in_order_and_a_panic_answers_only_its_call() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let (server, _seen) = watched_in_process(HubOptions::default());
        let mut client = RawClient::in_process(&server, "/watched", protocol).await;
        // A burst of plain calls, one that panics among them, and an async call between:
        // every call is answered, in order, and the connection stays.
        let mut ids = Vec::new();
        for (a, b) in [(6u32, 3u32), (1, 0), (8, 2)] {
            let (a, b) = (client.value(a), client.value(b));
            ids.push(client.invoke("Divide", vec![a, b]).await);
        }
        client.send(&upload_invocation("c", "Count", "v")).await;
        client
            .send(&HubMessage::Completion(Completion::void("v")))
            .await;
        let (a, b) = (client.value(9u32), client.value(3u32));
        ids.push(client.invoke("Divide", vec![a, b]).await);
        ids.insert(3, "c".into());
        let outcomes = answered_in_order(&mut client, &ids, protocol).await;
        assert_eq!(outcomes[0], Outcome::Result(client.value(2u32)));
        assert_eq!(
            outcomes[1],
            Outcome::Error("An unexpected error occurred invoking 'Divide' on the server.".into()),
            "{protocol}: the panic answers its own call"
        );
        assert_eq!(outcomes[2], Outcome::Result(client.value(4u32)));
        assert_eq!(outcomes[3], Outcome::Result(client.value(0usize)));
        assert_eq!(outcomes[4], Outcome::Result(client.value(3u32)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_methods_start_on_the_read_loop_and_leave_it_when_they_wait() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let (server, _seen) = watched_in_process(HubOptions::default());
        let mut client = RawClient::in_process(&server, "/watched", protocol).await;
        let answers = async |client: &mut RawClient, calls: &[(&str, Vec<Value>)]| {
            let mut ids = Vec::new();
            for (target, arguments) in calls {
                ids.push(client.invoke(target, arguments.clone()).await);
            }
            answered_in_order(client, &ids, protocol).await
        };
        let task = |outcome: &Outcome| match outcome {
            Outcome::Result(value) => value.deserialize::<String>().expect("a task id"),
            other => panic!("{protocol}: expected a result, got {other:?}"),
        };
        let settle = |wait_ms: u64, panic: bool| {
            ("Settle", vec![client.value(wait_ms), client.value(panic)])
        };
        let (quick, slow, panicky) = (settle(0, false), settle(30, false), settle(0, true));
        let divide = ("Divide", vec![client.value(8u32), client.value(2u32)]);

        let read_loop = task(&answers(&mut client, &[("LoopTask", vec![])]).await[0]);
        let alone = answers(&mut client, std::slice::from_ref(&quick)).await;
        assert_eq!(
            task(&alone[0]),
            read_loop,
            "{protocol}: an async method that did not wait ran on the read loop"
        );
        // One that waits, then calls queued behind it (one panics before it waits):
        // every call is answered, in order, and the connection stays.
        let burst = [slow, panicky, quick.clone(), divide, quick];
        let outcomes = answers(&mut client, &burst).await;
        assert_ne!(
            task(&outcomes[0]),
            read_loop,
            "{protocol}: a method that waited finished on a task of its own"
        );
        assert_eq!(
            outcomes[1],
            Outcome::Error("An unexpected error occurred invoking 'Settle' on the server.".into()),
            "{protocol}: the panic answers its own call"
        );
        task(&outcomes[2]);
        assert_eq!(outcomes[3], Outcome::Result(client.value(4u32)));
        task(&outcomes[4]);

        // While a method waits (here for a client result), the loop reads on: the
        // client's answer reaches it.
        let hold = client.invoke("Hold", vec![]).await;
        let released = client.value("released");
        let done = completions(&mut client, &[hold.as_str()], |invocation| {
            let id = invocation.invocation_id?;
            Some(HubMessage::Completion(Completion::result(
                id,
                released.clone(),
            )))
        })
        .await;
        assert_eq!(done[0].outcome, Outcome::Result(client.value("released")));
    }
}
