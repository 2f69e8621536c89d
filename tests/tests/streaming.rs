//! Streams both ways: items and completions, cancellation, uploads, errors, back-pressure
//! and bounded memory with a million items each way. In process (`hubs::testing`), frame
//! by frame, except the million items, which cross a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hubs::protocol::{
    CancelInvocation, Completion, HubMessage, Invocation, Outcome, Protocol, StreamInvocation,
    StreamItem, Value,
};
use hubs::testing::TestServer;
use hubs::{CancellationToken, HubError, Server, Stream, UploadStream, hub};
use hubs_tests::{RawClient, interop_in_process, serve};

fn stream_invocation(
    id: &str,
    target: &str,
    arguments: Vec<Value>,
    stream_ids: Vec<String>,
) -> HubMessage {
    HubMessage::StreamInvocation(StreamInvocation {
        headers: Default::default(),
        invocation_id: id.to_owned(),
        target: target.to_owned(),
        arguments,
        stream_ids,
    })
}

fn item(id: &str, value: Value) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        headers: Default::default(),
        invocation_id: id.to_owned(),
        item: value,
    })
}

/// Collects the items of stream `id` until its Completion.
async fn collect(client: &mut RawClient, id: &str) -> (Vec<Value>, Outcome) {
    let mut items = Vec::new();
    loop {
        match client.next_message().await {
            Some(HubMessage::StreamItem(i)) if i.invocation_id == id => items.push(i.item),
            Some(HubMessage::Completion(c)) if c.invocation_id == id => return (items, c.outcome),
            Some(_) => {}
            None => panic!("closed during stream {id}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_items_then_completes() {
    let server = interop_in_process();
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/testhub", protocol).await;
        client
            .send(&stream_invocation("1", "Stream", vec![], vec![]))
            .await;
        let (items, outcome) = collect(&mut client, "1").await;
        let items: Vec<String> = items
            .iter()
            .map(|v| v.deserialize().expect("string"))
            .collect();
        assert_eq!(items, ["a", "b", "c"]);
        assert_eq!(outcome, Outcome::Void);

        client
            .send(&stream_invocation("2", "EmptyStream", vec![], vec![]))
            .await;
        assert_eq!(collect(&mut client, "2").await, (vec![], Outcome::Void));

        let message = client.value("An error occurred.");
        client
            .send(&stream_invocation(
                "3",
                "StreamThrowException",
                vec![message],
                vec![],
            ))
            .await;
        assert_eq!(
            collect(&mut client, "3").await.1,
            Outcome::Error(
                "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred."
                    .into()
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_invocations_get_the_official_texts() {
    let server = interop_in_process();
    let mut client = RawClient::in_process(&server, "/testhub", Protocol::Json).await;
    let id = client.invoke("EmptyStream", vec![]).await;
    assert_eq!(
        collect(&mut client, &id).await.1,
        Outcome::Error("The client attempted to invoke the streaming 'EmptyStream' method with a non-streaming invocation.".into())
    );
    let value = client.value("x");
    client
        .send(&stream_invocation("s", "Echo", vec![value], vec![]))
        .await;
    assert_eq!(
        collect(&mut client, "s").await.1,
        Outcome::Error("The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.".into())
    );
    client
        .send(&HubMessage::Invocation(Invocation {
            invocation_id: Some("u".into()),
            target: "StreamingConcat".into(),
            arguments: vec![],
            stream_ids: vec!["a".into(), "b".into()],
            ..Default::default()
        }))
        .await;
    assert_eq!(
        collect(&mut client, "u").await.1,
        Outcome::Error(
            "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Client sent 2 stream(s), Hub method expects 1.".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_right_after_the_invocation_is_noticed() {
    let server = interop_in_process();
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/testhub", protocol).await;
        client
            .send(&stream_invocation("7", "InfiniteStream", vec![], vec![]))
            .await;
        client
            .send(&HubMessage::CancelInvocation(CancelInvocation {
                headers: Default::default(),
                invocation_id: "7".into(),
            }))
            .await;
        let mut canceled = false;
        let mut completed = false;
        while !(canceled && completed) {
            match client.next_message().await {
                Some(HubMessage::Invocation(Invocation { target, .. }))
                    if target == "StreamCanceled" =>
                {
                    canceled = true
                }
                Some(HubMessage::Completion(c)) if c.invocation_id == "7" => {
                    assert_eq!(c.outcome, Outcome::Void);
                    completed = true;
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("closed"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_reach_the_method_and_errors_become_hub_errors() {
    let server = interop_in_process();
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/testhub", protocol).await;
        client
            .send(&HubMessage::Invocation(Invocation {
                invocation_id: Some("1".into()),
                target: "StreamingConcat".into(),
                arguments: vec![],
                stream_ids: vec!["2".into()],
                ..Default::default()
            }))
            .await;
        for part in ["Hello ", "world", "!"] {
            let value = client.value(part);
            client.send(&item("2", value)).await;
        }
        client
            .send(&HubMessage::Completion(Completion::void("2")))
            .await;
        let (_, outcome) = collect(&mut client, "1").await;
        assert_eq!(outcome, Outcome::Result(client.value("Hello world!")));

        client
            .send(&HubMessage::Invocation(Invocation {
                invocation_id: Some("3".into()),
                target: "StreamingConcat".into(),
                arguments: vec![],
                stream_ids: vec!["4".into()],
                ..Default::default()
            }))
            .await;
        let value = client.value("partial");
        client.send(&item("4", value)).await;
        client
            .send(&HubMessage::Completion(Completion::error(
                "4",
                "Something bad",
            )))
            .await;
        assert_eq!(
            collect(&mut client, "3").await.1,
            Outcome::Error("An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad".into())
        );
    }
}

/// A hub for volume and lifecycle tests.
struct Pipes {
    finished: Arc<AtomicUsize>,
}

#[hub]
impl Pipes {
    pub(crate) async fn sum(&self, mut numbers: UploadStream<u64>) -> Result<u64, HubError> {
        let sum = async {
            let mut total = 0;
            while let Some(n) = numbers.next().await {
                total += n?;
            }
            Ok(total)
        }
        .await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        sum
    }

    pub(crate) fn count(&self, to: u64) -> impl Stream<Item = u64> + use<> {
        futures_util::stream::iter(0..to)
    }

    pub(crate) fn flaky(&self, fail_at: u64) -> impl Stream<Item = Result<u64, HubError>> + use<> {
        futures_util::stream::iter(0..).map(move |n| {
            if n == fail_at {
                Err(HubError::new("gave up"))
            } else {
                Ok(n)
            }
        })
    }

    pub(crate) fn echo_all(
        &self,
        numbers: UploadStream<u64>,
        cancel: CancellationToken,
    ) -> impl Stream<Item = u64> + use<> {
        numbers
            .take_until(cancel.cancelled_owned())
            .filter_map(|n| async move { n.ok() })
    }
}

fn pipes_server() -> (Server, Arc<AtomicUsize>) {
    let finished = Arc::new(AtomicUsize::new(0));
    let server = Server::new().hub(
        "/pipes",
        Pipes {
            finished: finished.clone(),
        },
    );
    (server, finished)
}

fn pipes() -> (TestServer, Arc<AtomicUsize>) {
    let (server, finished) = pipes_server();
    (TestServer::new(server).expect("builds"), finished)
}

/// Peak resident memory of this process (test client and server together), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_while_streaming_end_the_stream() {
    let (server, _) = pipes();
    let mut client = RawClient::in_process(&server, "/pipes", Protocol::MessagePack).await;
    let at = client.value(3u64);
    client
        .send(&stream_invocation("f", "Flaky", vec![at], vec![]))
        .await;
    let (items, outcome) = collect(&mut client, "f").await;
    assert_eq!(items.len(), 3);
    assert_eq!(
        outcome,
        Outcome::Error(
            "An error occurred on the server while streaming results. HubException: gave up".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_in_one_method() {
    let (server, _) = pipes();
    let mut client = RawClient::in_process(&server, "/pipes", Protocol::Json).await;
    client
        .send(&stream_invocation(
            "e",
            "EchoAll",
            vec![],
            vec!["in".into()],
        ))
        .await;
    for n in 0..5u64 {
        let value = client.value(n);
        client.send(&item("in", value)).await;
    }
    client
        .send(&HubMessage::Completion(Completion::void("in")))
        .await;
    let (items, outcome) = collect(&mut client, "e").await;
    let items: Vec<u64> = items
        .iter()
        .map(|v| v.deserialize().expect("u64"))
        .collect();
    assert_eq!(items, [0, 1, 2, 3, 4]);
    assert_eq!(outcome, Outcome::Void);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_upload_ends_with_the_connection() {
    let (server, finished) = pipes();
    let mut client = RawClient::in_process(&server, "/pipes", Protocol::Json).await;
    client
        .send(&HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "Sum".into(),
            stream_ids: vec!["2".into()],
            ..Default::default()
        }))
        .await;
    let value = client.value(5u64);
    client.send(&item("2", value)).await;
    client.close().await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while finished.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the method saw its upload end when the connection did");
}

const MILLION: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_each_way_with_bounded_memory() {
    let addr = serve(pipes_server().0.build().expect("builds")).await;
    let before = peak_rss_kib();

    // Upload: the client sends as fast as it can, in frames of 1000 messages; the server's
    // 10-item buffer makes it wait for the method.
    let mut client = RawClient::connect(addr, "/pipes", Protocol::MessagePack).await;
    client
        .send(&HubMessage::Invocation(Invocation {
            invocation_id: Some("sum".into()),
            target: "Sum".into(),
            stream_ids: vec!["n".into()],
            ..Default::default()
        }))
        .await;
    let mut frame = Vec::new();
    for n in 0..MILLION {
        let message = item(
            "n",
            Value::serialize(Protocol::MessagePack, &n).expect("encodes"),
        );
        Protocol::MessagePack
            .encode(&message, &mut frame)
            .expect("encodes");
        if (n + 1).is_multiple_of(1000) {
            client.send_binary(std::mem::take(&mut frame)).await;
        }
    }
    client
        .send(&HubMessage::Completion(Completion::void("n")))
        .await;
    let (_, outcome) = collect(&mut client, "sum").await;
    assert_eq!(
        outcome,
        Outcome::Result(client.value(MILLION * (MILLION - 1) / 2))
    );
    let after_upload = peak_rss_kib();

    // Download to a slow client: it pauses every 50 000 items; the server waits for it.
    let to = client.value(MILLION);
    client
        .send(&stream_invocation("count", "Count", vec![to], vec![]))
        .await;
    let mut received = 0u64;
    loop {
        match client.next_message().await {
            Some(HubMessage::StreamItem(_)) => {
                received += 1;
                if received.is_multiple_of(50_000) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Some(HubMessage::Completion(c)) if c.invocation_id == "count" => {
                assert_eq!(c.outcome, Outcome::Void);
                break;
            }
            Some(_) => {}
            None => panic!("closed after {received} items"),
        }
    }
    assert_eq!(received, MILLION);
    let after_download = peak_rss_kib();
    println!(
        "peak RSS (client and server in one process): start {before} KiB, after a million-item upload {after_upload} KiB, after a million-item download {after_download} KiB"
    );
    // Bounded: neither direction buffered the million items (about 9 MB of MessagePack).
    assert!(
        after_download.saturating_sub(before) < 64 * 1024,
        "memory grew by {} KiB",
        after_download - before
    );
}

/// A stream whose items are always ready: it never waits on anything but its connection's
/// queue.
struct Firehose {
    cancelled: tokio::sync::mpsc::UnboundedSender<()>,
}

#[hub]
impl Firehose {
    pub(crate) fn flood(
        &self,
        cancel: CancellationToken,
        size: usize,
    ) -> impl Stream<Item = String> + use<> {
        let cancelled = self.cancelled.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = cancelled.send(());
        });
        futures_util::stream::repeat("x".repeat(size))
    }

    pub(crate) fn echo(&self, text: String) -> String {
        text
    }
}

/// Ends the test process when the test has not finished within a minute: a runtime that
/// one task keeps busy cannot fire its own timeouts, so a wedged test would hang.
fn watchdog(test: &'static str) -> impl Drop {
    struct Finished(Arc<AtomicBool>);
    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let finished = Arc::new(AtomicBool::new(false));
    let seen = finished.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !seen.load(Ordering::SeqCst) {
            eprintln!("{test}: still running after 60 s, its runtime wedged");
            std::process::exit(101);
        }
    });
    Finished(finished)
}

/// A stream that is always ready, on one thread, must leave the caller's connection
/// readable: its CancelInvocation and its next call are read and served while the stream
/// is still filling the queue (it used to starve the read loop, which waited for the queue
/// under half of `pause_reading` while the stream refilled it to `pace` at every turn).
#[tokio::test(flavor = "current_thread")]
async fn a_stream_that_is_always_ready_leaves_its_caller_readable() {
    let _watchdog = watchdog("a_stream_that_is_always_ready_leaves_its_caller_readable");
    for size in [1, 1024, 40 * 1024] {
        let (cancelled, mut cancellations) = tokio::sync::mpsc::unbounded_channel();
        let server = TestServer::new(Server::new().hub("/firehose", Firehose { cancelled }))
            .expect("builds");
        let client = server.client("/firehose").build();
        client.start().await.expect("starts");
        let firehose = FirehoseConnection::new(&client);
        let mut flood = firehose.flood(size).await.expect("streams");
        for _ in 0..3 {
            assert_eq!(
                flood.next().await.expect("an item").expect("ok").len(),
                size
            );
        }
        let echoed = tokio::time::timeout(Duration::from_secs(10), firehose.echo("hi".into()))
            .await
            .unwrap_or_else(|_| panic!("{size} B items: a call behind the stream was never read"));
        assert_eq!(echoed.expect("echo"), "hi");
        drop(flood);
        tokio::time::timeout(Duration::from_secs(10), cancellations.recv())
            .await
            .unwrap_or_else(|_| panic!("{size} B items: the cancel was never read"))
            .expect("cancelled");
        client.stop().await;
    }
}

/// Drops every stream item.
struct DropItems;

impl hubs::filter::OutgoingFilter for DropItems {
    fn on_send(
        &self,
        message: &mut hubs::filter::OutgoingMessage<'_>,
    ) -> Result<(), hubs::filter::Dropped> {
        match message.kind() {
            hubs::filter::OutgoingKind::StreamItem => {
                Err(hubs::filter::Dropped("no items today".into()))
            }
            _ => Ok(()),
        }
    }
}

/// The same when an outgoing filter drops every item: the stream never waits on the
/// queue at all, and must still leave its caller readable.
#[tokio::test(flavor = "current_thread")]
async fn a_stream_whose_items_a_filter_drops_leaves_its_caller_readable() {
    let _watchdog = watchdog("a_stream_whose_items_a_filter_drops_leaves_its_caller_readable");
    let (cancelled, mut cancellations) = tokio::sync::mpsc::unbounded_channel();
    let options = hubs::HubOptions::default().outgoing_filter(DropItems);
    let server =
        TestServer::new(Server::new().hub_with("/firehose", Firehose { cancelled }, options))
            .expect("builds");
    let client = server.client("/firehose").build();
    client.start().await.expect("starts");
    let firehose = FirehoseConnection::new(&client);
    let flood = firehose.flood(16).await.expect("streams");
    let echoed = tokio::time::timeout(Duration::from_secs(10), firehose.echo("hi".into()))
        .await
        .expect("a call behind the stream is read");
    assert_eq!(echoed.expect("echo"), "hi");
    drop(flood);
    tokio::time::timeout(Duration::from_secs(10), cancellations.recv())
        .await
        .expect("the cancel is read")
        .expect("cancelled");
    client.stop().await;
}
