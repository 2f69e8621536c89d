//! Client results: a hub method waiting on its own caller without deadlocking, every way a
//! result can fail, fan-out to several clients, and the hub context. In process
//! (`hubs::testing`), frame by frame: the transports have their own suites.

use std::time::Duration;

use hubs::protocol::{Completion, HubMessage, Invocation, Outcome, Protocol, Value};
use hubs::testing::TestServer;
use hubs::{Context, HubError, HubOptions, Server, client, hub};
use hubs_tests::RawClient;

#[client]
pub(crate) trait Player {
    async fn notify(&self, text: String);
    async fn guess(&self, round: u32) -> Result<u32, HubError>;
}

struct Game;

#[hub(client = Player)]
impl Game {
    pub(crate) async fn ask_me(&self, cx: &Context<Self>, round: u32) -> Result<u32, HubError> {
        cx.clients().caller().guess(round).await
    }

    pub(crate) async fn poll_all(&self, cx: &Context<Self>) -> Vec<(String, Result<u32, String>)> {
        let Ok(answers) = cx
            .clients()
            .all_except([cx.connection_id().clone()])
            .ask()
            .guess(1)
        else {
            return Vec::new();
        };
        let mut all: Vec<_> = answers
            .all()
            .await
            .into_iter()
            .map(|(id, r)| (id.to_string(), r.map_err(|e| e.message().to_owned())))
            .collect();
        all.sort();
        all
    }

    pub(crate) async fn first(&self, cx: &Context<Self>) -> Option<u32> {
        let answers = cx.clients().others().ask().guess(2).ok()?;
        answers.first().await.map(|(_, guess)| guess)
    }

    pub(crate) async fn tell_all(&self, cx: &Context<Self>, text: String) {
        let _ = cx.clients().all().notify(text).await;
    }

    pub(crate) fn my_id(&self, cx: &Context<Self>) -> String {
        cx.connection_id().to_string()
    }
}

fn game(timeout: Duration) -> TestServer {
    TestServer::new(Server::new().hub_with(
        "/game",
        Game,
        HubOptions::default().client_result_timeout(timeout),
    ))
    .expect("builds")
}

/// Waits for the server's `Guess` invocation and returns its id and round.
async fn expect_guess(client: &mut RawClient) -> (String, u32) {
    loop {
        match client.next_message().await {
            Some(HubMessage::Invocation(Invocation {
                target,
                invocation_id: Some(id),
                arguments,
                ..
            })) => {
                assert_eq!(target, "Guess");
                return (id, arguments[0].deserialize().expect("u32"));
            }
            Some(_) => continue,
            None => panic!("closed while waiting for Guess"),
        }
    }
}

async fn answer(client: &mut RawClient, id: String, outcome: Outcome) {
    client
        .send(&HubMessage::Completion(Completion {
            headers: Default::default(),
            invocation_id: id,
            outcome,
        }))
        .await;
}

async fn completion(client: &mut RawClient, id: &str) -> Outcome {
    loop {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) if c.invocation_id == id => return c.outcome,
            Some(_) => continue,
            None => panic!("closed while waiting for completion {id}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_awaits_its_own_callers_result_without_deadlock() {
    let server = game(Duration::from_secs(10));
    for protocol in Protocol::ALL {
        let mut client = RawClient::in_process(&server, "/game", protocol).await;
        let round = client.value(3u32);
        let call = client.invoke("AskMe", vec![round]).await;
        let (id, round) = expect_guess(&mut client).await;
        assert_eq!(round, 3);
        assert!(id.starts_with('s'), "server ids look like s1: {id}");
        // A result for an unknown id first: ignored, nothing else disturbed.
        let value = client.value(0u32);
        answer(&mut client, "s999".into(), Outcome::Result(value)).await;
        let value = client.value(round * 10);
        answer(&mut client, id, Outcome::Result(value)).await;
        assert_eq!(
            completion(&mut client, &call).await,
            Outcome::Result(client.value(30u32))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_the_hub_method() {
    let server = game(Duration::from_millis(300));
    let mut client = RawClient::in_process(&server, "/game", Protocol::Json).await;
    let text = |outcome: Outcome| match outcome {
        Outcome::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    };

    // The client's error text, as it sent it.
    let round = client.value(1u32);
    let call = client.invoke("AskMe", vec![round]).await;
    let (id, _) = expect_guess(&mut client).await;
    answer(
        &mut client,
        id,
        Outcome::Error("Client didn't provide a result.".into()),
    )
    .await;
    assert_eq!(
        text(completion(&mut client, &call).await),
        "An unexpected error occurred invoking 'AskMe' on the server. HubException: Client didn't provide a result."
    );

    // A result of the wrong type.
    let round = client.value(1u32);
    let call = client.invoke("AskMe", vec![round]).await;
    let (id, _) = expect_guess(&mut client).await;
    answer(
        &mut client,
        id,
        Outcome::Result(Value::from_raw(Protocol::Json, "\"seven\"")),
    )
    .await;
    let error = text(completion(&mut client, &call).await);
    assert!(
        error.contains("HubException: Error trying to deserialize result to u32."),
        "{error}"
    );

    // No answer at all: the timeout.
    let round = client.value(1u32);
    let call = client.invoke("AskMe", vec![round]).await;
    let _ = expect_guess(&mut client).await;
    let error = text(completion(&mut client, &call).await);
    assert!(error.contains("did not return a result within"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_while_asked_fails_the_result() {
    let server = game(Duration::from_secs(30));
    let mut client = RawClient::in_process(&server, "/game", Protocol::MessagePack).await;
    let id_call = client.invoke("MyId", vec![]).await;
    let id: String = match completion(&mut client, &id_call).await {
        Outcome::Result(value) => value.deserialize().expect("string"),
        other => panic!("{other:?}"),
    };
    let context = server.hub_context::<Game>().expect("mounted");
    let asking = tokio::spawn(async move { context.clients().client(id).guess(5).await });
    let _ = expect_guess(&mut client).await;
    client.close().await;
    let result = tokio::time::timeout(Duration::from_secs(5), asking)
        .await
        .expect("the wait ends with the connection")
        .expect("task");
    let error = result.expect_err("no result from a gone client");
    assert!(
        error.message().ends_with("disconnected."),
        "{}",
        error.message()
    );

    let context = server.hub_context::<Game>().expect("mounted");
    let error = context
        .clients()
        .client("nobody")
        .guess(1)
        .await
        .expect_err("unknown id");
    assert_eq!(error.message(), "Connection 'nobody' does not exist.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_collects_every_answer() {
    let server = game(Duration::from_millis(500));
    let mut asker = RawClient::in_process(&server, "/game", Protocol::Json).await;
    let mut good = RawClient::in_process(&server, "/game", Protocol::MessagePack).await;
    let mut failing = RawClient::in_process(&server, "/game", Protocol::Json).await;
    let mut silent = RawClient::in_process(&server, "/game", Protocol::Json).await;

    let call = asker.invoke("PollAll", vec![]).await;
    let (id, _) = expect_guess(&mut good).await;
    let value = good.value(42u32);
    answer(&mut good, id, Outcome::Result(value)).await;
    let (id, _) = expect_guess(&mut failing).await;
    answer(&mut failing, id, Outcome::Error("Error: no idea".into())).await;
    let _ = expect_guess(&mut silent).await;

    let answers: Vec<(String, Result<u32, String>)> = match completion(&mut asker, &call).await {
        Outcome::Result(value) => value.deserialize().expect("answers"),
        other => panic!("{other:?}"),
    };
    assert_eq!(answers.len(), 3, "{answers:?}");
    let results: Vec<_> = answers.iter().map(|(_, r)| r.clone()).collect();
    assert!(results.contains(&Ok(42)));
    assert!(results.contains(&Err("Error: no idea".into())));
    assert!(results.iter().any(|r| {
        r.as_ref()
            .is_err_and(|e| e.contains("did not return a result within"))
    }));

    // `first` skips failures and takes the first success.
    let call = asker.invoke("First", vec![]).await;
    let (id, _) = expect_guess(&mut failing).await;
    answer(&mut failing, id, Outcome::Error("nope".into())).await;
    let (id, _) = expect_guess(&mut good).await;
    let value = good.value(7u32);
    answer(&mut good, id, Outcome::Result(value)).await;
    let _ = expect_guess(&mut silent).await;
    assert_eq!(
        completion(&mut asker, &call).await,
        Outcome::Result(asker.value(Some(7u32)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_reach_every_client() {
    let server = game(Duration::from_secs(5));
    let mut a = RawClient::in_process(&server, "/game", Protocol::Json).await;
    let mut b = RawClient::in_process(&server, "/game", Protocol::MessagePack).await;
    let text = a.value("hello");
    a.invoke("TellAll", vec![text]).await;
    for client in [&mut a, &mut b] {
        loop {
            match client.next_message().await {
                Some(HubMessage::Invocation(Invocation {
                    target,
                    invocation_id: None,
                    arguments,
                    ..
                })) => {
                    assert_eq!(target, "Notify");
                    assert_eq!(
                        arguments[0].deserialize::<String>().expect("string"),
                        "hello"
                    );
                    break;
                }
                Some(_) => continue,
                None => panic!("closed"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_fails_pending_results_and_allows_reconnect() {
    let server = game(Duration::from_secs(30));
    let mut client = RawClient::in_process(&server, "/game", Protocol::Json).await;
    let id_call = client.invoke("MyId", vec![]).await;
    let id: String = match completion(&mut client, &id_call).await {
        Outcome::Result(value) => value.deserialize().expect("string"),
        other => panic!("{other:?}"),
    };
    let context = server.hub_context::<Game>().expect("mounted");
    let asking = tokio::spawn(async move { context.clients().client(id).guess(9).await });
    let _ = expect_guess(&mut client).await;

    server.service().shutdown();
    let error = tokio::time::timeout(Duration::from_secs(5), asking)
        .await
        .expect("the wait ends with the shutdown")
        .expect("task")
        .expect_err("no result after shutdown");
    assert!(
        error.message().ends_with("disconnected."),
        "{}",
        error.message()
    );
    loop {
        match client.next_message().await {
            Some(HubMessage::Close(close)) => {
                assert_eq!(close.error, None);
                assert!(close.allow_reconnect, "clients may reconnect elsewhere");
                break;
            }
            Some(_) => continue,
            None => panic!("closed without a Close message"),
        }
    }
    assert!(client.closed().await);
}
