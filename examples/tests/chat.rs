//! The chat hub in process (`hubs::testing`), through the typed proxy and receiver the
//! Rust `chat_client` uses: presence per room, typing to the rest of the room, asking the
//! room (answers, passes, silence and a missing handler), and names that come from
//! identity, not from the caller.

use std::sync::Arc;
use std::time::Duration;

use hubs::testing::TestServer;
use hubs::{HubError, HubOptions, User, connection::HubConnection};
use hubs_examples::chat::{
    self, ChatClient, ChatClientReceiver, ChatHubConnection, Message, Reply, RoomMembers,
};
use tokio::sync::mpsc;

/// What one member's page would show.
#[derive(Debug, PartialEq)]
enum Seen {
    Message(String, String, String),
    Members(RoomMembers),
    Typing(String, String),
    Asked(String, String),
}

/// A member that records what it sees and replies to questions as told.
struct Member {
    seen: mpsc::UnboundedSender<Seen>,
    reply: Option<Reply>,
}

impl ChatClient for Member {
    async fn receive_message(&self, message: Message) {
        let _ = self
            .seen
            .send(Seen::Message(message.room, message.user, message.text));
    }

    async fn members(&self, members: RoomMembers) {
        let _ = self.seen.send(Seen::Members(members));
    }

    async fn typing(&self, room: String, user: String) {
        let _ = self.seen.send(Seen::Typing(room, user));
    }

    async fn ask(&self, from: String, question: String) -> Result<Reply, HubError> {
        let _ = self.seen.send(Seen::Asked(from, question));
        match &self.reply {
            Some(reply) => Ok(reply.clone()),
            // Never answers.
            None => std::future::pending().await,
        }
    }
}

/// The next thing a member sees, failing the test after 5 s of nothing.
async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the member saw nothing for 5 s")
}

fn server() -> TestServer {
    TestServer::new(chat::server(HubOptions::default())).expect("builds")
}

async fn member(
    server: &TestServer,
    name: &str,
    reply: Option<Reply>,
) -> (HubConnection, mpsc::UnboundedReceiver<Seen>) {
    let connection = server
        .client_as("/chat", User::new(name).with_name(name))
        .build();
    let (seen, rx) = mpsc::unbounded_channel();
    ChatClientReceiver::register(&connection, Arc::new(Member { seen, reply }));
    connection.start().await.expect("starts");
    (connection, rx)
}

fn members(room: &str, names: &[&str]) -> Seen {
    Seen::Members(RoomMembers {
        room: room.to_owned(),
        members: names.iter().map(|n| (*n).to_owned()).collect(),
    })
}

#[tokio::test]
async fn presence_follows_joins_leaves_and_disconnects() {
    let server = server();
    let (ann, mut ann_sees) = member(&server, "ann", None).await;
    let (bob, mut bob_sees) = member(&server, "bob", None).await;

    let joined = ChatHubConnection::new(&ann)
        .join_room("rust".into())
        .await
        .expect("joins");
    assert_eq!(joined.members, ["ann"]);
    assert_eq!(next(&mut ann_sees).await, Some(members("rust", &["ann"])));
    ChatHubConnection::new(&bob)
        .join_room("rust".into())
        .await
        .expect("joins");
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );
    assert_eq!(
        next(&mut bob_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );
    assert_eq!(
        ChatHubConnection::new(&ann)
            .members("rust".into())
            .await
            .expect("members"),
        ["ann", "bob"]
    );

    // A second tab of ann's is still one ann.
    let (ann_again, _) = member(&server, "ann", None).await;
    ChatHubConnection::new(&ann_again)
        .join_room("rust".into())
        .await
        .expect("joins");
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );
    ann_again.stop().await;
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );

    ChatHubConnection::new(&bob)
        .leave_room("rust".into())
        .await
        .expect("leaves");
    assert_eq!(next(&mut ann_sees).await, Some(members("rust", &["ann"])));
    ChatHubConnection::new(&bob)
        .join_room("rust".into())
        .await
        .expect("joins");
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );
    bob.stop().await;
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann"])),
        "a member who disconnects leaves the room's list"
    );
    ann.stop().await;
}

#[tokio::test]
async fn messages_carry_the_sender_from_identity_and_typing_reaches_the_others() {
    let server = server();
    let (ann, mut ann_sees) = member(&server, "ann", None).await;
    let (bob, mut bob_sees) = member(&server, "bob", None).await;
    let (carol, mut carol_sees) = member(&server, "carol", None).await;
    for connection in [&ann, &bob] {
        ChatHubConnection::new(connection)
            .join_room("rust".into())
            .await
            .expect("joins");
    }
    assert_eq!(next(&mut ann_sees).await, Some(members("rust", &["ann"])));
    assert_eq!(
        next(&mut ann_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );
    assert_eq!(
        next(&mut bob_sees).await,
        Some(members("rust", &["ann", "bob"]))
    );

    let ann_chat = ChatHubConnection::new(&ann);
    ann_chat.typing("rust".into()).await.expect("typing");
    ann_chat
        .send_message("rust".into(), "  hello rust  ".into())
        .await
        .expect("sends");
    assert_eq!(
        next(&mut bob_sees).await,
        Some(Seen::Typing("rust".into(), "ann".into())),
        "the rest of the room sees ann typing"
    );
    assert_eq!(
        next(&mut bob_sees).await,
        Some(Seen::Message(
            "rust".into(),
            "ann".into(),
            "hello rust".into()
        ))
    );
    assert_eq!(
        next(&mut ann_sees).await,
        Some(Seen::Message(
            "rust".into(),
            "ann".into(),
            "hello rust".into()
        )),
        "ann does not see her own typing, but sees her message"
    );
    ann_chat
        .send_message(String::new(), "hi all".into())
        .await
        .expect("sends");
    assert_eq!(
        next(&mut carol_sees).await,
        Some(Seen::Message(String::new(), "ann".into(), "hi all".into())),
        "carol, outside the room, only sees the message to everyone"
    );

    let error = ann_chat
        .send_message("rust".into(), "   ".into())
        .await
        .expect_err("an empty message is refused");
    assert!(
        error
            .to_string()
            .contains("A message has 1 to 2000 characters."),
        "{error}"
    );
    let error = ann_chat
        .join_room("@bob".into())
        .await
        .expect_err("a name group is not a room");
    assert!(
        error.to_string().contains("does not start with '@'"),
        "{error}"
    );
    for connection in [ann, bob, carol] {
        connection.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn asking_the_room_gathers_answers_passes_and_silence() {
    let server = server();
    let (ann, _) = member(&server, "ann", None).await;
    let (bob, mut bob_sees) =
        member(&server, "bob", Some(Reply::Answer { text: "tea".into() })).await;
    let (carol, _) = member(&server, "carol", Some(Reply::Pass)).await;
    // dave never answers; erin registers no handler at all.
    let (dave, _) = member(&server, "dave", None).await;
    let erin = server
        .client_as("/chat", User::new("erin").with_name("erin"))
        .build();
    erin.start().await.expect("starts");
    for connection in [&ann, &bob, &carol, &dave, &erin] {
        ChatHubConnection::new(connection)
            .join_room("rust".into())
            .await
            .expect("joins");
    }

    let started = tokio::time::Instant::now();
    let answers = ChatHubConnection::new(&ann)
        .ask_room("rust".into(), "tea or coffee?".into())
        .await
        .expect("asks");
    let replies: Vec<(&str, Option<&Reply>)> = answers
        .iter()
        .map(|a| (a.user.as_str(), a.reply.as_ref()))
        .collect();
    assert_eq!(
        replies,
        [
            ("bob", Some(&Reply::Answer { text: "tea".into() })),
            ("carol", Some(&Reply::Pass)),
            ("dave", None),
            ("erin", None),
        ]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "the hub waited for dave as long as it allows"
    );
    let mut asked = Vec::new();
    while let Ok(seen) = bob_sees.try_recv() {
        asked.push(seen);
    }
    assert!(
        asked.contains(&Seen::Asked("ann".into(), "tea or coffee?".into())),
        "{asked:?}"
    );
    for connection in [ann, bob, carol, dave, erin] {
        connection.stop().await;
    }
}
