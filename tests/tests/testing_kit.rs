//! `hubs::testing`: hubs tested in process, without TCP, over the real connection core:
//! typed proxies and receivers on both protocols, groups, client results answered by
//! closures, streams both ways, identity, and tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hubs::connection::{ConnectionEvent, Upload};
use hubs::protocol::Protocol;
use hubs::testing::TestServer;
use hubs::{Context, HubError, HubOptions, Server, UploadStream, User, client, hub};
use tokio::sync::mpsc;

/// What the room's hub calls on its clients.
#[client]
pub trait Member {
    /// A message to the room.
    async fn said(&self, who: String, text: String);
    /// A client result: the member's mood.
    async fn mood(&self) -> Result<String, HubError>;
}

struct Room;

#[hub(client = Member)]
impl Room {
    pub(crate) async fn join(&self, cx: &Context<Self>, room: String) -> Result<(), HubError> {
        cx.join(&room).await?;
        Ok(())
    }

    pub(crate) async fn leave(&self, cx: &Context<Self>, room: String) -> Result<(), HubError> {
        cx.leave(&room).await?;
        Ok(())
    }

    /// Private, so no hub method: a newcomer's missing `pub`.
    #[allow(dead_code)]
    fn whisper(&self, text: String) -> String {
        text
    }

    pub(crate) async fn say(&self, cx: &Context<Self>, room: String, text: String) {
        let who = cx.user_identifier().unwrap_or("anonymous").to_owned();
        let _ = cx.clients().group(&room).said(who, text).await;
    }

    pub(crate) async fn caller_mood(&self, cx: &Context<Self>) -> Result<String, HubError> {
        cx.clients().caller().mood().await
    }

    pub(crate) fn count(&self, n: u32) -> impl futures_util::Stream<Item = u32> + use<> {
        futures_util::stream::iter(0..n)
    }

    pub(crate) async fn sum(&self, numbers: UploadStream<u32>) -> Result<u32, HubError> {
        let mut total = 0;
        let mut numbers = numbers;
        while let Some(n) = numbers.next().await {
            total += n?;
        }
        Ok(total)
    }

    pub(crate) async fn nap(&self, seconds: u64) -> u64 {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        seconds
    }
}

/// A member that records what it hears and answers with a fixed mood.
struct Recorder {
    heard: mpsc::UnboundedSender<(String, String)>,
    mood: &'static str,
}

impl Member for Recorder {
    async fn said(&self, who: String, text: String) {
        let _ = self.heard.send((who, text));
    }

    async fn mood(&self) -> Result<String, HubError> {
        Ok(self.mood.to_owned())
    }
}

fn server() -> TestServer {
    TestServer::new(Server::new().hub("/room", Room)).expect("builds")
}

#[tokio::test]
async fn typed_calls_groups_and_client_results_in_process_on_both_protocols() {
    let server = server();
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let (heard_tx, mut heard) = mpsc::unbounded_channel();
        let ann = server
            .client_as("/room", User::new("ann"))
            .protocol(protocol)
            .build();
        MemberReceiver::register(
            &ann,
            Arc::new(Recorder {
                heard: heard_tx,
                mood: "sunny",
            }),
        );
        let bob = server
            .client_as("/room", User::new("bob"))
            .protocol(protocol)
            .build();
        ann.start().await.expect("ann");
        bob.start().await.expect("bob");
        assert!(ann.connection_id().is_some(), "the connection id is known");

        let room = RoomConnection::new(&ann);
        room.join(format!("r-{protocol}")).await.expect("join");
        RoomConnection::new(&bob)
            .say(format!("r-{protocol}"), "hello".into())
            .await
            .expect("say");
        assert_eq!(
            heard.recv().await,
            Some(("bob".to_owned(), "hello".to_owned())),
            "{protocol}: ann is in the room, bob is the speaker"
        );
        assert_eq!(room.caller_mood().await.expect("mood"), "sunny");

        // Streams both ways.
        let items: Vec<u32> = room
            .count(5)
            .await
            .expect("stream")
            .map(|item| item.expect("item"))
            .collect()
            .await;
        assert_eq!(items, [0, 1, 2, 3, 4]);
        let total = room
            .sum(Upload::new(futures_util::stream::iter([1u32, 2, 3])))
            .await
            .expect("upload");
        assert_eq!(total, 6);

        ann.stop().await;
        bob.stop().await;
    }
}

#[tokio::test]
async fn a_client_result_answered_by_a_closure() {
    let server = server();
    let anonymous = server.client("/room").build();
    anonymous.on("Mood", |()| async { Ok::<_, String>("curious".to_owned()) });
    anonymous.start().await.expect("starts");
    assert_eq!(
        RoomConnection::new(&anonymous)
            .caller_mood()
            .await
            .expect("mood"),
        "curious"
    );
    anonymous.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_paused_clock_drives_hub_code_and_keep_alive() {
    let options = HubOptions::default()
        .keep_alive_interval(Duration::from_secs(15))
        .client_timeout(Duration::from_secs(30));
    let server = TestServer::new(Server::new().hub_with("/room", Room, options)).expect("builds");
    let client = server.client("/room").build();
    let mut events = client.events();
    client.start().await.expect("starts");
    let started = tokio::time::Instant::now();
    // An hour of hub code, and of keep-alive both ways, in no time.
    let slept = RoomConnection::new(&client).nap(3600).await.expect("nap");
    assert_eq!(slept, 3600);
    assert!(started.elapsed() >= Duration::from_secs(3600));
    assert!(
        events.try_recv().is_err(),
        "pings kept the connection alive: {:?}",
        events.try_recv()
    );
    client.stop().await;
    assert_eq!(events.recv().await, Ok(ConnectionEvent::Closed(None)));
}

#[tokio::test]
async fn a_recording_shows_what_a_method_sent_to_whom() {
    use hubs::routing::Selection;
    use hubs::testing::Recording;

    let recording = Recording::default();
    let options = HubOptions::default().lifetime_manager(recording.manager());
    let server = TestServer::new(Server::new().hub_with("/room", Room, options)).expect("builds");
    let ann = server.client_as("/room", User::new("ann")).build();
    ann.on("Mood", |()| async { Ok::<_, String>("calm".to_owned()) });
    ann.start().await.expect("starts");
    let room = RoomConnection::new(&ann);
    room.join("lobby".into()).await.expect("join");
    room.say("lobby".into(), "hi all".into())
        .await
        .expect("say");
    assert_eq!(room.caller_mood().await.expect("mood"), "calm");

    let sent = recording.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].to, Selection::Group("lobby".into()));
    assert_eq!(sent[0].target, "Said");
    assert_eq!(
        sent[0].arguments,
        [serde_json::json!("ann"), serde_json::json!("hi all")]
    );
    assert!(!sent[0].client_result);
    assert_eq!(
        sent[1].to,
        Selection::Connection(ann.connection_id().expect("id").into())
    );
    assert_eq!(sent[1].target, "Mood");
    assert!(sent[1].client_result);
    assert!(recording.sent().is_empty(), "taken");
    ann.stop().await;
}

#[tokio::test]
async fn join_and_leave_are_the_callers_own() {
    let server = server();
    let (heard_tx, mut heard) = mpsc::unbounded_channel();
    let ann = server.client_as("/room", User::new("ann")).build();
    MemberReceiver::register(
        &ann,
        Arc::new(Recorder {
            heard: heard_tx,
            mood: "calm",
        }),
    );
    let bob = server.client_as("/room", User::new("bob")).build();
    ann.start().await.expect("ann");
    bob.start().await.expect("bob");
    let room = RoomConnection::new(&ann);
    let speaker = RoomConnection::new(&bob);

    room.join("lobby".into()).await.expect("join");
    speaker
        .say("lobby".into(), "one".into())
        .await
        .expect("say");
    assert_eq!(heard.recv().await, Some(("bob".into(), "one".into())));

    room.leave("lobby".into()).await.expect("leave");
    speaker
        .say("lobby".into(), "two".into())
        .await
        .expect("say");
    room.join("kitchen".into()).await.expect("join");
    speaker
        .say("kitchen".into(), "three".into())
        .await
        .expect("say");
    assert_eq!(
        heard.recv().await,
        Some(("bob".into(), "three".into())),
        "after leaving the lobby, ann hears only the kitchen"
    );
    ann.stop().await;
    bob.stop().await;
}

/// Everything the server logs while `f` runs on this thread (the test kit runs the
/// server's tasks on the test's runtime, one thread).
async fn logged<F: std::future::Future<Output = ()>>(f: F) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    f.await;
    drop(guard);
    let bytes = buffer.0.lock().expect("log buffer").clone();
    String::from_utf8(bytes).expect("utf-8 logs")
}

#[tokio::test]
async fn calling_a_private_function_is_refused_and_the_server_says_why() {
    let logs = logged(async {
        let server = server();
        let client = server.client("/room").build();
        client.start().await.expect("starts");
        let refused = client
            .invoke::<String>("Whisper", ("psst".to_owned(),))
            .await
            .expect_err("a private function is no hub method");
        assert!(
            refused.to_string().contains("Method does not exist."),
            "the caller learns nothing more than the official server says: {refused}"
        );
        let unknown = client
            .invoke::<String>("Shout", ("hey".to_owned(),))
            .await
            .expect_err("no such method");
        assert!(
            unknown.to_string().contains("Method does not exist."),
            "{unknown}"
        );
        client.stop().await;
    })
    .await;
    assert!(
        logs.contains("`Whisper`, which is the private function `whisper`")
            && logs.contains("make it `pub`"),
        "the server's log names the missing `pub`: {logs}"
    );
    assert!(
        !logs.contains("Shout"),
        "a name that matches nothing is not worth a warning: {logs}"
    );
}
