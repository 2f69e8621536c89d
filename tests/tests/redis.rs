//! Scale-out over a real Redis: three hubs servers share a backplane; Rust clients on
//! different servers reach each other through every Clients target, group membership and
//! client results cross servers, and a Redis restart in the middle of traffic is survived.
//! The test starts `redis-server` (Debian's package; `scripts/test` installs it) on a free
//! 127.0.0.1 port and stops it.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hubs::connection::HubConnection;
use hubs::{ConnectionId, Context, HubError, HubOptions, Server, client, hub};
use hubs_redis::{RedisLifetimeManager, RedisOptions};
use hubs_tests::{STEP, serve};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

#[client]
pub(crate) trait Member {
    async fn note(&self, text: String);
    async fn answer(&self, question: String) -> Result<String, HubError>;
}

struct Cluster;

/// The backplane's own words reach the caller here, so the tests can read them: `?` alone
/// shows only `The message could not be routed.`.
fn routed(result: Result<(), hubs::SendError>) -> Result<(), HubError> {
    match result {
        Err(hubs::SendError::Routing(detail)) => Err(HubError::new(detail)),
        other => Ok(other?),
    }
}

#[hub(client = Member)]
impl Cluster {
    pub(crate) fn my_id(&self, cx: &Context<Self>) -> String {
        cx.connection_id().to_string()
    }
    /// A send that does not wait for Redis (the default): delivered here, queued for the
    /// other servers.
    pub(crate) async fn all_queued(
        &self,
        cx: &Context<Self>,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().all().note(text).await)
    }
    pub(crate) async fn to_groups_queued(
        &self,
        cx: &Context<Self>,
        groups: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().groups(groups).note(text).await)
    }
    pub(crate) async fn all(&self, cx: &Context<Self>, text: String) -> Result<(), HubError> {
        routed(cx.clients().confirmed().all().note(text).await)
    }
    pub(crate) async fn others(&self, cx: &Context<Self>, text: String) -> Result<(), HubError> {
        routed(cx.clients().confirmed().others().note(text).await)
    }
    pub(crate) async fn all_except(
        &self,
        cx: &Context<Self>,
        id: ConnectionId,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().all_except([id]).note(text).await)
    }
    pub(crate) async fn to_client(
        &self,
        cx: &Context<Self>,
        id: ConnectionId,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().client(id).note(text).await)
    }
    pub(crate) async fn to_clients(
        &self,
        cx: &Context<Self>,
        ids: Vec<ConnectionId>,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().clients(ids).note(text).await)
    }
    pub(crate) async fn join(&self, cx: &Context<Self>, group: String) -> Result<(), HubError> {
        routed(cx.groups().add(cx.connection_id(), &group).await)
    }
    pub(crate) async fn leave(&self, cx: &Context<Self>, group: String) -> Result<(), HubError> {
        routed(cx.groups().remove(cx.connection_id(), &group).await)
    }
    pub(crate) async fn add_to_group(
        &self,
        cx: &Context<Self>,
        id: ConnectionId,
        group: String,
    ) -> Result<(), HubError> {
        routed(cx.groups().add(&id, &group).await)
    }
    pub(crate) async fn to_group(
        &self,
        cx: &Context<Self>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().group(group).note(text).await)
    }
    pub(crate) async fn to_groups(
        &self,
        cx: &Context<Self>,
        groups: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().groups(groups).note(text).await)
    }
    pub(crate) async fn group_except(
        &self,
        cx: &Context<Self>,
        group: String,
        id: ConnectionId,
        text: String,
    ) -> Result<(), HubError> {
        routed(
            cx.clients()
                .confirmed()
                .group_except(group, [id])
                .note(text)
                .await,
        )
    }
    pub(crate) async fn others_in_group(
        &self,
        cx: &Context<Self>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        routed(
            cx.clients()
                .confirmed()
                .others_in_group(group)
                .note(text)
                .await,
        )
    }
    pub(crate) async fn to_user(
        &self,
        cx: &Context<Self>,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().user(user).note(text).await)
    }
    pub(crate) async fn to_users(
        &self,
        cx: &Context<Self>,
        users: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        routed(cx.clients().confirmed().users(users).note(text).await)
    }
    pub(crate) async fn ask(
        &self,
        cx: &Context<Self>,
        id: ConnectionId,
        question: String,
    ) -> Result<String, HubError> {
        cx.clients().client(id).answer(question).await
    }
}

/// A Redis server on a free loopback port, stopped when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    async fn start(port: u16) -> Self {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("redis-server is not installed: run `bash scripts/test` (it installs Debian's redis-server)");
        let child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starts redis-server");
        let redis = Self {
            child: Some(child),
            port,
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("redis-server accepts connections");
        redis
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the server: a hung Redis.
    async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server runs");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn cluster_server(redis: &str) -> std::net::SocketAddr {
    cluster_server_with(
        RedisOptions::new(redis)
            .prefix("test")
            .publish_patience(Duration::from_secs(1)),
    )
    .await
    .0
}

async fn cluster_server_with(
    options: RedisOptions,
) -> (std::net::SocketAddr, Arc<RedisLifetimeManager>) {
    let backplane = RedisLifetimeManager::connect(options, "cluster")
        .await
        .expect("connects to Redis");
    let manager = backplane.clone();
    let options = HubOptions::default()
        .user_id(|request| request.query("user").map(str::to_owned))
        .lifetime_manager(backplane);
    let addr = serve(
        Server::new()
            .hub_with("/cluster", Cluster, options)
            .build()
            .expect("builds"),
    )
    .await;
    (addr, manager)
}

/// A member client: what it was told arrives on the returned channel.
struct Answerer(String);

impl Member for Answerer {
    async fn note(&self, _text: String) {}
    async fn answer(&self, question: String) -> Result<String, HubError> {
        Ok(format!("{} answers {question}", self.0))
    }
}

struct Client {
    connection: HubConnection,
    notes: mpsc::UnboundedReceiver<String>,
    id: String,
}

async fn member(addr: std::net::SocketAddr, name: &str) -> Client {
    let connection = HubConnection::builder(format!("http://{addr}/cluster?user={name}")).build();
    let (tx, notes) = mpsc::unbounded_channel();
    connection.on("Note", move |(text,): (String,)| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(text);
        }
    });
    let answerer = Arc::new(Answerer(name.to_owned()));
    connection.on("Answer", move |(question,): (String,)| {
        let answerer = answerer.clone();
        async move { answerer.answer(question).await }
    });
    connection.start().await.expect("starts");
    let id: String = connection.invoke("MyId", ()).await.expect("id");
    Client {
        connection,
        notes,
        id,
    }
}

impl Client {
    async fn call(&self, method: &str, arguments: impl hubs::Arguments) {
        let () = tokio::time::timeout(STEP, self.connection.invoke(method, arguments))
            .await
            .expect("in time")
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    }

    /// Every note that arrives within a short while (the deliveries of one send).
    async fn drain(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        while let Ok(Some(note)) =
            tokio::time::timeout(Duration::from_millis(300), self.notes.recv()).await
        {
            notes.push(note);
        }
        notes
    }
}

async fn expect(clients: &mut [&mut Client], got: &[bool], text: &str) {
    for (client, expected) in clients.iter_mut().zip(got) {
        let notes = client.drain().await;
        if *expected {
            assert_eq!(notes, [text], "{} should have received {text:?}", client.id);
        } else {
            assert!(
                notes.is_empty(),
                "{} should not have received {text:?}, got {notes:?}",
                client.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_across_three_servers_and_a_redis_restart() {
    let port = free_port();
    let mut redis = Redis::start(port).await;
    let a = cluster_server(&redis.url()).await;
    let b = cluster_server(&redis.url()).await;
    let c = cluster_server(&redis.url()).await;

    let mut ann = member(a, "ann").await; // on A
    let mut bob = member(b, "bob").await; // on B
    let mut cy = member(c, "cy").await; // on C
    let mut ann2 = member(b, "ann").await; // ann's second connection, on B

    ann.call("All", ("all",)).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, true, true, true],
        "all",
    )
    .await;
    bob.call("Others", ("others",)).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, true, true],
        "others",
    )
    .await;
    cy.call("AllExcept", (&bob.id, "except bob")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, true, true],
        "except bob",
    )
    .await;
    ann.call("ToClient", (&cy.id, "to cy")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[false, false, true, false],
        "to cy",
    )
    .await;
    ann.call("ToClients", (vec![&bob.id, &cy.id], "to two"))
        .await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[false, true, true, false],
        "to two",
    )
    .await;
    cy.call("ToUser", ("ann", "to user ann")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, false, true],
        "to user ann",
    )
    .await;
    cy.call("ToUsers", (vec!["bob", "cy"], "to users")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[false, true, true, false],
        "to users",
    )
    .await;

    // Groups: ann joins on A; cy is added by bob's server (cy lives on C).
    ann.call("Join", ("g",)).await;
    bob.call("AddToGroup", (&cy.id, "g")).await;
    bob.call("ToGroup", ("g", "group")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, true, false],
        "group",
    )
    .await;
    ann.call("OthersInGroup", ("g", "others in g")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[false, false, true, false],
        "others in g",
    )
    .await;
    bob.call("GroupExcept", ("g", &ann.id, "g but ann")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[false, false, true, false],
        "g but ann",
    )
    .await;
    bob.call("Join", ("h",)).await;
    cy.call("ToGroups", (vec!["g", "h"], "g or h")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, true, true, false],
        "g or h",
    )
    .await;
    cy.call("Leave", ("g",)).await;
    ann.call("ToGroup", ("g", "after leave")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, false, false],
        "after leave",
    )
    .await;

    // A client result across servers: asked on A, answered by cy on C.
    let answer: String = ann
        .connection
        .invoke("Ask", (&cy.id, "why"))
        .await
        .expect("client result");
    assert_eq!(answer, "cy answers why");
    let missing = ann
        .connection
        .invoke::<String>("Ask", ("nobody", "why"))
        .await
        .expect_err("unknown");
    assert!(
        missing
            .to_string()
            .contains("Connection 'nobody' does not exist."),
        "{missing}"
    );

    // Redis goes away in the middle of traffic.
    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lost = ann
        .connection
        .invoke::<()>("All", ("during outage",))
        .await
        .expect_err("remote delivery fails");
    assert!(
        lost.to_string()
            .contains("delivered to this server's connections only"),
        "{lost}"
    );
    // Local delivery kept working; nothing reached the other servers.
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, false, false],
        "during outage",
    )
    .await;

    // Redis comes back on the same port: the backplane reconnects and resubscribes, and
    // the group membership from before the outage still routes.
    let _redis = Redis::start(port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Each attempt reaches ann (local) even while it fails for the other servers.
        if ann
            .connection
            .invoke::<()>("ToGroup", ("g", "probe"))
            .await
            .is_ok()
        {
            let notes = ann.drain().await;
            assert!(
                !notes.is_empty() && notes.iter().all(|n| n == "probe"),
                "{notes:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backplane did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Subscriptions come back asynchronously; retry until bob (on B, in group h) hears.
    let mut recovered = false;
    for attempt in 0..50 {
        let text = format!("after restart {attempt}");
        if ann
            .connection
            .invoke::<()>("ToGroups", (vec!["h"], &text))
            .await
            .is_ok()
            && bob.drain().await.contains(&text)
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "cross-server delivery resumed after the restart");
    bob.call("ToGroup", ("g", "g still routes")).await;
    expect(
        &mut [&mut ann, &mut bob, &mut cy, &mut ann2],
        &[true, false, false, false],
        "g still routes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_up_is_a_clear_error() {
    let port = free_port();
    let error = match RedisLifetimeManager::connect(
        RedisOptions::new(format!("redis://127.0.0.1:{port}/")),
        "hub",
    )
    .await
    {
        Err(error) => error.to_string(),
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(
        error.starts_with(&format!(
            "cannot connect to Redis at redis://127.0.0.1:{port}/"
        )),
        "{error}"
    );
}

/// Notes that arrive within `window` after the last one (all of a burst).
async fn collect_notes(client: &mut Client, window: Duration) -> Vec<String> {
    let mut notes = Vec::new();
    while let Ok(Some(note)) = tokio::time::timeout(window, client.notes.recv()).await {
        notes.push(note);
    }
    notes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_never_holds_up_local_delivery_and_nothing_arrives_twice() {
    let mut redis = Redis::start(free_port()).await;
    let options = || {
        RedisOptions::new(redis.url())
            .prefix("hung")
            .publish_patience(Duration::from_secs(20))
    };
    let (a, _) = cluster_server_with(options()).await;
    let (b, on_b) = cluster_server_with(options()).await;
    let ann = member(a, "ann").await;
    let mut ann2 = member(a, "ann2").await;
    let mut bob = member(b, "bob").await;

    redis.signal("-STOP").await;
    // Every send returns at once and reaches the connections of its own server while
    // Redis is hung.
    let started = tokio::time::Instant::now();
    for n in 0..20 {
        let () = tokio::time::timeout(STEP, ann.connection.invoke("AllQueued", (format!("m{n}"),)))
            .await
            .expect("a send does not wait for a hung Redis")
            .expect("queued");
    }
    let sending = started.elapsed();
    // (Sorted: the Rust client runs handlers as separate tasks, so their order is not
    // the wire's; issue 15 fixes that.)
    let sorted = |mut notes: Vec<String>| {
        notes.sort_by_key(|note| note[1..].parse::<u32>().unwrap_or(u32::MAX));
        notes
    };
    let local = sorted(collect_notes(&mut ann2, Duration::from_millis(500)).await);
    let expected: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    assert_eq!(local, expected, "local delivery went on");
    assert!(
        sending < Duration::from_secs(2),
        "20 sends took {sending:?}"
    );
    // Long enough for the first publish attempt to time out while Redis holds it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.signal("-CONT").await;
    // The other server gets each message once, though the publish that Redis was
    // holding when it resumed was also retried.
    let remote = sorted(collect_notes(&mut bob, Duration::from_secs(3)).await);
    assert_eq!(remote, expected, "each message exactly once");
    let stats = on_b.stats();
    println!("after a hung Redis: {stats:?}");
    redis.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_group_send_reaches_each_connection_once_across_servers() {
    let mut redis = Redis::start(free_port()).await;
    let a = cluster_server(&redis.url()).await;
    let b = cluster_server(&redis.url()).await;
    let ann = member(a, "ann").await;
    let mut bob = member(b, "bob").await;
    let mut ann2 = member(a, "ann2").await;
    for group in ["g1", "g2"] {
        bob.call("Join", (group,)).await;
        ann2.call("Join", (group,)).await;
    }
    ann.call("ToGroupsQueued", (vec!["g1", "g2"], "once")).await;
    assert_eq!(
        collect_notes(&mut bob, Duration::from_millis(500)).await,
        ["once"]
    );
    assert_eq!(
        collect_notes(&mut ann2, Duration::from_millis(500)).await,
        ["once"]
    );
    redis.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_lost_while_redis_is_down_are_counted_and_confirmed_sends_fail() {
    let mut redis = Redis::start(free_port()).await;
    let (a, on_a) = cluster_server_with(
        RedisOptions::new(redis.url())
            .prefix("down")
            .publish_patience(Duration::from_millis(500)),
    )
    .await;
    let ann = member(a, "ann").await;
    redis.stop().await;
    for n in 0..5 {
        let () = ann
            .connection
            .invoke("AllQueued", (format!("lost {n}"),))
            .await
            .expect("queued, then lost");
    }
    // A confirmed send waits for Redis and reports the failure.
    let failed = ann
        .connection
        .invoke::<()>("All", ("confirmed",))
        .await
        .expect_err("Redis is down");
    assert!(
        failed
            .to_string()
            .contains("delivered to this server's connections only"),
        "{failed}"
    );
    tokio::time::timeout(STEP, async {
        while on_a.stats().failed < 6 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("every lost message is counted: {:?}", on_a.stats()));
}

/// The interop server (`TestHub`) on a Redis backplane, on a free port.
async fn interop_on(redis: &str) -> std::net::SocketAddr {
    let settings = hubs_examples::interop::Settings::default();
    let hubs = hubs_examples::interop::server_with_redis(&settings, redis)
        .await
        .expect("connects to Redis")
        .build()
        .expect("builds");
    let app = hubs_examples::interop::router(&settings, hubs).expect("the app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(hubs::serve(listener, app, hubs::ServeOptions::default()));
    addr
}

/// A TestHub client that answers `Result` with `answer`; its connection id.
async fn test_client(
    addr: std::net::SocketAddr,
    user: &str,
    answer: i64,
) -> (HubConnection, String) {
    let connection = HubConnection::builder(format!("http://{addr}/testhub?user={user}")).build();
    connection.on("Result", move |(_group,): (String,)| async move {
        Ok::<i64, HubError>(answer)
    });
    connection.start().await.expect("starts");
    let id: String = connection
        .invoke("GetCallerConnectionId", ())
        .await
        .expect("its id");
    (connection, id)
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_kick_and_fan_out_results_across_three_servers() {
    let port = free_port();
    let mut redis = Redis::start(port).await;
    let a = interop_on(&redis.url()).await;
    let b = interop_on(&redis.url()).await;
    let c = interop_on(&redis.url()).await;
    let (on_a, ann_a) = test_client(a, "ann", 1).await;
    let (on_b, ann_b) = test_client(b, "ann", 2).await;
    let (on_c, cy) = test_client(c, "cy", 3).await;
    for connection in [&on_a, &on_b, &on_c] {
        let () = connection
            .invoke("JoinGroup", ("room",))
            .await
            .expect("joins");
    }
    // Presence writes travel through each server's outbox; give them a moment.
    let everyone = sorted(vec![ann_a.clone(), ann_b.clone(), cy.clone()]);
    tokio::time::timeout(STEP, async {
        loop {
            let members: Vec<String> = on_c
                .invoke("GroupMembers", ("room",))
                .await
                .expect("members");
            if members == everyone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every server's member is listed");
    let anns: Vec<String> = on_c
        .invoke("UserConnections", ("ann",))
        .await
        .expect("ann's");
    assert_eq!(anns, sorted(vec![ann_a.clone(), ann_b.clone()]));

    // A fan-out client result reaches the members on every server, the caller included.
    let answers: Vec<i64> = on_a.invoke("AskGroup", ("room",)).await.expect("answers");
    assert_eq!(answers, [1, 2, 3]);

    // A server that died without cleaning up: its entries are left out, and removed.
    let ghost_set = "{interop:testhub}:presence:group:room";
    let status = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "SADD",
            ghost_set,
            "crashed-server|ghost",
        ])
        .stdout(Stdio::null())
        .status()
        .await
        .expect("redis-cli runs");
    assert!(status.success());
    let members: Vec<String> = on_c
        .invoke("GroupMembers", ("room",))
        .await
        .expect("members");
    assert_eq!(
        members, everyone,
        "a dead server's connections are not present"
    );

    // Kick from anywhere: C ends B's connection.
    let kicked: bool = on_c.invoke("Kick", (ann_b.as_str(),)).await.expect("kick");
    assert!(kicked);
    let unknown: bool = on_c
        .invoke("Kick", ("no-such-connection",))
        .await
        .expect("kick");
    assert!(!unknown);
    tokio::time::timeout(STEP, async {
        loop {
            let members: Vec<String> = on_a
                .invoke("GroupMembers", ("room",))
                .await
                .expect("members");
            if members == sorted(vec![ann_a.clone(), cy.clone()]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the kicked connection left the group everywhere");
    assert_eq!(
        on_b.state(),
        hubs::connection::ConnectionState::Disconnected
    );
    let ghost = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SMEMBERS", ghost_set])
        .output()
        .await
        .expect("redis-cli runs");
    assert!(
        !String::from_utf8_lossy(&ghost.stdout).contains("ghost"),
        "the dead entry was removed when read"
    );
    redis.stop().await;
}

/// A three-node Redis Cluster on free loopback ports, stopped (and its files removed) when
/// dropped.
struct RedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    async fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("hubs-cluster-{}", ports[0]));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        let mut nodes = Vec::new();
        for port in &ports {
            let node = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "2000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("starts a cluster node");
            nodes.push(node);
        }
        for port in &ports {
            tokio::time::timeout(Duration::from_secs(10), async {
                while tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the node accepts connections");
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("redis-cli runs");
        assert!(status.success(), "the cluster is created");
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &ports[0].to_string(), "cluster", "info"])
                    .output()
                    .await
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the cluster is ready");
        Self { nodes, ports, dir }
    }

    fn nodes(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_with_sharded_pub_sub() {
    let cluster = RedisCluster::start().await;
    let options = || {
        RedisOptions::cluster(cluster.nodes())
            .prefix("sharded")
            .publish_patience(Duration::from_secs(2))
    };
    let (a, _) = cluster_server_with(options()).await;
    let (b, _) = cluster_server_with(options()).await;
    let mut ann = member(a, "ann").await;
    let mut bob = member(b, "bob").await;
    let mut cy = member(b, "cy").await;

    // Everyone, across servers (sharded channels on different nodes).
    ann.call("AllQueued", ("hello cluster",)).await;
    for client in [&mut ann, &mut bob, &mut cy] {
        assert_eq!(
            collect_notes(client, Duration::from_millis(500)).await,
            ["hello cluster"]
        );
    }
    // Groups, with a member on each server; a two-group send arrives once.
    for client in [&bob, &cy] {
        client.call("Join", ("g1",)).await;
    }
    bob.call("Join", ("g2",)).await;
    ann.call("ToGroupsQueued", (vec!["g1", "g2"], "groups"))
        .await;
    assert_eq!(
        collect_notes(&mut bob, Duration::from_millis(500)).await,
        ["groups"]
    );
    assert_eq!(
        collect_notes(&mut cy, Duration::from_millis(500)).await,
        ["groups"]
    );
    assert!(
        collect_notes(&mut ann, Duration::from_millis(300))
            .await
            .is_empty()
    );
    // A user and a single connection on the other server; a client result across it.
    ann.call("ToUser", ("bob", "to bob")).await;
    assert_eq!(
        collect_notes(&mut bob, Duration::from_millis(500)).await,
        ["to bob"]
    );
    ann.call("ToClient", (cy.id.as_str(), "to cy")).await;
    assert_eq!(
        collect_notes(&mut cy, Duration::from_millis(500)).await,
        ["to cy"]
    );
    let answer: String = ann
        .connection
        .invoke("Ask", (bob.id.as_str(), "ready?"))
        .await
        .expect("a client result across the cluster");
    assert_eq!(answer, "bob answers ready?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_group_reaches_every_member_on_another_server_in_order() {
    const MEMBERS: usize = 100;
    const MESSAGES: u64 = 5_000;
    let mut redis = Redis::start(free_port()).await;
    let a = interop_on(&redis.url()).await;
    let b = interop_on(&redis.url()).await;
    let mut members = Vec::with_capacity(MEMBERS);
    for _ in 0..MEMBERS {
        let mut reader = hubs_tests::FrameReader::connect(b, "/testhub").await;
        reader.invoke("JoinGroup", "[\"burst\"]").await;
        members.push(reader);
    }
    // Every member counts its GroupMessages, in order.
    let tasks: Vec<_> = members
        .into_iter()
        .map(|mut reader| {
            tokio::spawn(async move {
                let mut next = 0;
                while next < MESSAGES {
                    let Some(payload) = reader.next_payload().await else {
                        return Err(format!("closed after {next}"));
                    };
                    if let Some(number) = hubs_tests::numbered(&payload) {
                        if number != next {
                            return Err(format!("expected {next}, got {number}"));
                        }
                        next += 1;
                    }
                }
                Ok(())
            })
        })
        .collect();
    // The sender on the other server: 5,000 SendToGroup written in a tight loop, never
    // waiting for an answer.
    let mut sender = hubs_tests::FrameReader::connect(a, "/testhub").await;
    let pad = "x".repeat(100);
    for i in 0..MESSAGES {
        let message = format!(
            "{{\"type\":1,\"target\":\"SendToGroup\",\"arguments\":[\"burst\",\"{i:08}:{pad}\"]}}\u{1e}"
        );
        sender.send_text(message.as_bytes()).await;
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("member {i} did not get every message in time"))
            .expect("the member's task");
        assert_eq!(result, Ok(()), "member {i}");
    }
    redis.stop().await;
}
