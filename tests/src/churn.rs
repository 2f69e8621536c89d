//! Churn: many clients at once, each in a loop of negotiate, connect, join a group, echo
//! and leave (every other one by a clean close, the rest by a TCP reset), for a while.
//! What a server meets in production, for the memory tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hubs::protocol::{HubMessage, Protocol};

use crate::RawClient;

/// What a churn did.
#[derive(Debug, Default)]
pub struct Churned {
    /// Cycles that connected, joined, echoed and left.
    pub cycles: u64,
    /// Cycles that failed somewhere (should be none).
    pub failures: u64,
}

/// Runs `clients` client loops against `path` on `addr` for `duration`, each joining one
/// of `groups` groups; the protocols alternate.
pub async fn churn(
    addr: SocketAddr,
    path: &str,
    clients: usize,
    groups: usize,
    duration: Duration,
) -> Churned {
    let cycles = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + duration;
    let mut loops = Vec::with_capacity(clients);
    for client in 0..clients {
        let (cycles, failures, path) = (cycles.clone(), failures.clone(), path.to_owned());
        loops.push(tokio::spawn(async move {
            let mut round = 0;
            while tokio::time::Instant::now() < deadline {
                let group = format!("churn-{}", (client + round) % groups);
                let leave_by_reset = (client + round) % 2 == 1;
                let protocol = if client % 2 == 0 {
                    Protocol::Json
                } else {
                    Protocol::MessagePack
                };
                let cycle = cycle(addr, &path, protocol, group, leave_by_reset);
                match tokio::time::timeout(crate::STEP, cycle).await {
                    Ok(true) => cycles.fetch_add(1, Ordering::Relaxed),
                    _ => failures.fetch_add(1, Ordering::Relaxed),
                };
                round += 1;
            }
        }));
    }
    for one in loops {
        let _ = one.await;
    }
    Churned {
        cycles: cycles.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
    }
}

/// One client's life: negotiate, connect, join, echo, leave; whether it all worked.
pub async fn cycle(
    addr: SocketAddr,
    path: &str,
    protocol: Protocol,
    group: String,
    leave_by_reset: bool,
) -> bool {
    let (status, body) = crate::negotiate(addr, path).await;
    let token = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["connectionToken"].as_str().map(str::to_owned));
    let (200, Some(token)) = (status, token) else {
        return false;
    };
    let mut client = RawClient::connect(addr, &format!("{path}?id={token}"), protocol).await;
    let group = client.value(group);
    let joined = client.invoke("JoinGroup", vec![group]).await;
    let text = client.value("hello");
    let echoed = client.invoke("Echo", vec![text]).await;
    let mut answered = 0;
    while answered < 2 {
        match client.next_message().await {
            Some(HubMessage::Completion(c)) if c.invocation_id == joined => answered += 1,
            Some(HubMessage::Completion(c)) if c.invocation_id == echoed => answered += 1,
            Some(_) => {}
            None => return false,
        }
    }
    if leave_by_reset {
        client.reset();
    } else {
        client.close().await;
    }
    true
}
