//! The Azure SignalR Service data-plane REST API (versions 2022-06-01 and v1), served
//! under `/api` for the server's hubs by name, when the server has an access key
//! ([`Server::rest_api`](crate::Server::rest_api)).
//!
//! A hub is named by its path: the hub at `/chat` is `chat` (case-insensitively, as the
//! service treats names; with `?application=app`, the hub at `/app_chat`). Sends, group
//! changes, closes and existence checks go through the hub's lifetime manager and
//! presence, so with a backplane a call on any server reaches every server.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Request, Response, StatusCode};
use hubs_core::protocol::{EncodeError, Protocol, Value};
use hubs_core::{Arguments, ConnectionId, HubEndpoint, Presence, Selection, SendError};
use serde::Deserialize;

use crate::body::Body;
use crate::http_transport::read_body;

mod auth;
mod reply;
mod route;

pub(crate) use auth::Access;
use reply::Failure;
use route::{Call, Operation, Scope};

/// How many connections a close of many closes at once.
const CLOSES_AT_ONCE: usize = 64;

/// The largest request body the API reads: 1 MiB.
const MAX_BODY: usize = 1 << 20;

/// The REST API of a server: how its callers are checked.
#[derive(Debug, Clone)]
pub(crate) struct RestApi {
    access: Access,
}

impl RestApi {
    pub(crate) fn new(access: Access) -> Self {
        Self { access }
    }
}

/// Whether `path` is the API's.
pub(crate) fn is_api(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == "/api" || lower.starts_with("/api/")
}

/// The body of a send: the client method to invoke and its arguments (v1 callers write
/// `Target` and `Arguments`).
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(alias = "Target")]
    target: Option<String>,
    #[serde(alias = "Arguments", default)]
    arguments: Option<Vec<serde_json::Value>>,
}

/// A send's arguments as the caller gave them, encoded for each protocol.
struct JsonArguments(Vec<serde_json::Value>);

impl Arguments for JsonArguments {
    fn to_values(&self, protocol: Protocol) -> Result<Vec<Value>, EncodeError> {
        self.0
            .iter()
            .map(|value| Value::serialize(protocol, value))
            .collect()
    }
}

/// Answers a request under `/api`, finding hubs by mount path with `find` (`/chat` for
/// the hub `chat`).
pub(crate) async fn answer<B>(
    api: &RestApi,
    find: impl Fn(&str) -> Option<Arc<dyn HubEndpoint>>,
    request: Request<B>,
) -> Response<Body>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    if let Err(failure) = api.access.check(&parts.uri, &parts.headers).await {
        return failure.into_response();
    }
    let call = match route::read(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(call) => call,
        Err(failure) => return failure.into_response(),
    };
    let Some(hub) = call.hub.as_deref() else {
        return reply::status(call.ok);
    };
    let Some(endpoint) = find(&format!("/{hub}")).filter(|e| e.presence().is_some()) else {
        return Failure::not_found(&format!("no hub named '{hub}' on this server")).into_response();
    };
    let payload = if matches!(call.operation, Operation::Send(_)) {
        match read_body(body, MAX_BODY).await {
            Ok(bytes) => match payload(&bytes) {
                Ok(payload) => Some(payload),
                Err(failure) => return failure.into_response(),
            },
            Err(refused) if refused.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLarge",
                    "the body is over 1 MiB",
                )
                .into_response();
            }
            Err(_) => {
                return Failure::bad_request("message", "the body could not be read")
                    .into_response();
            }
        }
    } else {
        None
    };
    match execute(endpoint.as_ref(), &call, payload).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

/// A send's body: a JSON object with a non-empty `target` and an `arguments` array.
fn payload(bytes: &[u8]) -> Result<(String, JsonArguments), Failure> {
    let payload: Payload = serde_json::from_slice(bytes).map_err(|error| {
        Failure::bad_request(
            "message",
            &format!("the body must be a JSON object {{\"target\": string, \"arguments\": [...]}}: {error}"),
        )
    })?;
    let target = payload
        .target
        .filter(|target| !target.is_empty())
        .ok_or_else(|| Failure::bad_request("target", "the body has no `target`"))?;
    Ok((target, JsonArguments(payload.arguments.unwrap_or_default())))
}

/// Carries out one call on `hub`.
async fn execute(
    hub: &dyn HubEndpoint,
    call: &Call,
    payload: Option<(String, JsonArguments)>,
) -> Result<Response<Body>, Failure> {
    let not_a_hub = || Failure::not_found("not a hub");
    let presence = hub.presence().ok_or_else(not_a_hub)?;
    let groups = hub.groups().ok_or_else(not_a_hub)?;
    let excluded = call.excluded.clone();
    let done = reply::status(call.ok);
    match &call.operation {
        Operation::Health => Ok(done),
        Operation::Send(scope) => {
            let (target, arguments) =
                payload.ok_or_else(|| Failure::bad_request("message", "a send needs a body"))?;
            let recipients = hub
                .recipients(selection(scope, excluded))
                .ok_or_else(not_a_hub)?;
            recipients
                .send(&target, arguments)
                .await
                .map_err(send_failure)?;
            Ok(done)
        }
        Operation::Close(Scope::Connection(id)) => {
            presence.close(id, call.reason.as_deref()).await;
            Ok(done)
        }
        Operation::Close(scope) => {
            // A user's selection has no exceptions: they are left out here.
            let ids = presence.connections(&selection(scope, excluded)).await;
            let excluded: std::collections::HashSet<&ConnectionId> = call.excluded.iter().collect();
            let ids = ids.into_iter().filter(|id| !excluded.contains(id));
            close_all(&presence, ids.collect(), call.reason.clone()).await;
            Ok(done)
        }
        Operation::Exists(scope) => exists(
            presence.count(&selection(scope, Vec::new())).await > 0,
            call.ok,
        ),
        Operation::AddToGroup(group, id) | Operation::RemoveFromGroup(group, id) => {
            if presence.count(&Selection::Connection(id.clone())).await == 0 {
                return Err(Failure::not_found(&format!("no connection '{id}'")));
            }
            if matches!(call.operation, Operation::AddToGroup(..)) {
                groups.add(id, group).await.map_err(send_failure)?;
            } else {
                groups.remove(id, group).await.map_err(send_failure)?;
            }
            Ok(done)
        }
        Operation::LeaveAllGroups(id) => {
            for group in presence.groups_of(id).await {
                groups.remove(id, &group).await.map_err(send_failure)?;
            }
            Ok(done)
        }
        Operation::AddUser { user, group } => {
            groups
                .add_user(user, group, call.ttl)
                .await
                .map_err(send_failure)?;
            Ok(done)
        }
        Operation::RemoveUser { user, group } => {
            groups
                .remove_user(user, group)
                .await
                .map_err(send_failure)?;
            Ok(done)
        }
        Operation::HasUser { user, group } => exists(groups.has_user(user, group).await, call.ok),
        Operation::RemoveUserFromAll(user) => {
            groups
                .remove_user_from_all(user)
                .await
                .map_err(send_failure)?;
            Ok(done)
        }
        Operation::ListGroup(group) => {
            let mut members = presence.group_members(group).await;
            members.sort();
            let value: Vec<_> = members
                .iter()
                .map(|id| serde_json::json!({ "connectionId": id.as_str() }))
                .collect();
            Ok(reply::json(&serde_json::json!({ "value": value })))
        }
    }
}

/// Closes `ids`, many at a time: with a backplane, each close of another server's
/// connection is a round trip.
async fn close_all(presence: &Presence, ids: Vec<ConnectionId>, reason: Option<String>) {
    let mut pending = FuturesUnordered::new();
    for id in ids {
        let (presence, reason) = (presence.clone(), reason.clone());
        pending.push(async move { presence.close(&id, reason.as_deref()).await });
        if pending.len() >= CLOSES_AT_ONCE {
            pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
}

/// The connections a scope names, but `excluded`.
fn selection(scope: &Scope, excluded: Vec<ConnectionId>) -> Selection {
    match (scope, excluded.is_empty()) {
        (Scope::Hub, true) => Selection::All,
        (Scope::Hub, false) => Selection::AllExcept(excluded),
        (Scope::Group(group), true) => Selection::Group(group.clone()),
        (Scope::Group(group), false) => Selection::GroupExcept(group.clone(), excluded),
        (Scope::User(user), _) => Selection::User(user.clone()),
        (Scope::Connection(id), _) => Selection::Connection(id.clone()),
    }
}

/// `ok` when it exists, `404` when not.
fn exists(found: bool, ok: StatusCode) -> Result<Response<Body>, Failure> {
    if found {
        Ok(reply::status(ok))
    } else {
        Err(Failure::new(StatusCode::NOT_FOUND, "NotFound", "not found"))
    }
}

/// A send or group change that failed: bad arguments are the caller's (400), the rest
/// is the server's (503: a backplane that cannot route).
fn send_failure(error: SendError) -> Failure {
    match error {
        SendError::Encode(_) => Failure::bad_request("arguments", &error.to_string()),
        SendError::Dropped(_) => {
            Failure::new(StatusCode::FORBIDDEN, "Forbidden", &error.to_string())
        }
        _ => Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &error.to_string(),
        ),
    }
}
