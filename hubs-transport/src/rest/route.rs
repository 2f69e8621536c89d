//! What a REST API request asks for: the path and method read into one [`Call`], or the
//! API's error for a bad one.

use std::time::Duration;

use http::{Method, StatusCode};
use hubs_core::ConnectionId;

use super::reply::Failure;

/// Whom a send, a close or an existence check is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    Hub,
    Connection(ConnectionId),
    Group(String),
    User(String),
}

/// One operation of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation {
    Health,
    /// Send the body's invocation to the scope, but the excluded connections.
    Send(Scope),
    /// Close the scope's connections (a connection: `DELETE …/connections/{id}`).
    Close(Scope),
    /// Whether the scope has a connection.
    Exists(Scope),
    AddToGroup(String, ConnectionId),
    RemoveFromGroup(String, ConnectionId),
    LeaveAllGroups(ConnectionId),
    AddUser {
        user: String,
        group: String,
    },
    RemoveUser {
        user: String,
        group: String,
    },
    HasUser {
        user: String,
        group: String,
    },
    RemoveUserFromAll(String),
    ListGroup(String),
}

/// A request read: the hub (`None` for health), the operation, its query parameters and
/// the status it answers on success.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) hub: Option<String>,
    pub(crate) operation: Operation,
    pub(crate) excluded: Vec<ConnectionId>,
    pub(crate) reason: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) ok: StatusCode,
}

/// The API versions whose paths (`/api/hubs/…`) are served; the v1 paths need none.
const VERSIONS: [&str; 2] = ["2022-06-01", "2024-12-01"];

/// Reads `path` (starting `/api/`) and `query` for `method`.
pub(crate) fn read(method: &Method, path: &str, query: Option<&str>) -> Result<Call, Failure> {
    let raw: Vec<&str> = path.trim_matches('/').split('/').collect();
    let segments: Vec<String> = raw
        .iter()
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let query = Query::parse(query.unwrap_or(""));
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (hub, operation, ok) = match segments.as_slice() {
        ["api", "health"] if method == Method::HEAD || method == Method::GET => {
            query.version()?;
            (None, Operation::Health, StatusCode::OK)
        }
        ["api", "v1", "hubs", hub, rest @ ..] => {
            let (operation, ok) = v1(method, rest)?;
            (Some(*hub), operation, ok)
        }
        ["api", "hubs", hub, rest @ ..] => {
            query.version()?;
            let (operation, ok) = current(method, rest)?;
            (Some(*hub), operation, ok)
        }
        _ => return Err(Failure::not_found("no such API path")),
    };
    let hub = hub
        .map(|hub| hub_name(hub, query.application.as_deref()))
        .transpose()?;
    check_names(&operation)?;
    let ttl = match query.ttl.as_deref() {
        None => None,
        // The API's ttl is an int32 of seconds.
        Some(ttl) => Some(Duration::from_secs(
            ttl.parse::<u32>()
                .ok()
                .filter(|&ttl| ttl <= i32::MAX as u32)
                .map(u64::from)
                .ok_or_else(|| {
                    Failure::bad_request(
                        "ttl",
                        "ttl must be a whole number of seconds, from 0 to 2147483647",
                    )
                })?,
        )),
    };
    Ok(Call {
        hub,
        operation,
        excluded: query.excluded.into_iter().map(ConnectionId::from).collect(),
        reason: query.reason,
        ttl,
        ok,
    })
}

/// The 2022-06-01 paths after `/api/hubs/{hub}`.
fn current(method: &Method, rest: &[&str]) -> Result<(Operation, StatusCode), Failure> {
    use Operation as O;
    let (accepted, ok, none) = (StatusCode::ACCEPTED, StatusCode::OK, StatusCode::NO_CONTENT);
    let id = |s: &str| ConnectionId::from(s);
    let found = match (method.as_str(), rest) {
        ("POST", [":send"]) => (O::Send(Scope::Hub), accepted),
        ("POST", [":closeConnections"]) => (O::Close(Scope::Hub), none),
        ("HEAD", ["connections", c]) => (O::Exists(Scope::Connection(id(c))), ok),
        ("DELETE", ["connections", c]) => (O::Close(Scope::Connection(id(c))), ok),
        ("POST", ["connections", c, ":send"]) => (O::Send(Scope::Connection(id(c))), accepted),
        ("DELETE", ["connections", c, "groups"]) => (O::LeaveAllGroups(id(c)), ok),
        ("HEAD", ["groups", g]) => (O::Exists(Scope::Group((*g).to_owned())), ok),
        ("POST", ["groups", g, ":closeConnections"]) => {
            (O::Close(Scope::Group((*g).to_owned())), none)
        }
        ("POST", ["groups", g, ":send"]) => (O::Send(Scope::Group((*g).to_owned())), accepted),
        ("GET", ["groups", g, "connections"]) => (O::ListGroup((*g).to_owned()), ok),
        ("PUT", ["groups", g, "connections", c]) => (O::AddToGroup((*g).to_owned(), id(c)), ok),
        ("DELETE", ["groups", g, "connections", c]) => {
            (O::RemoveFromGroup((*g).to_owned(), id(c)), ok)
        }
        ("HEAD", ["users", u]) => (O::Exists(Scope::User((*u).to_owned())), ok),
        ("POST", ["users", u, ":closeConnections"]) => {
            (O::Close(Scope::User((*u).to_owned())), none)
        }
        ("POST", ["users", u, ":send"]) => (O::Send(Scope::User((*u).to_owned())), accepted),
        ("DELETE", ["users", u, "groups"]) => (O::RemoveUserFromAll((*u).to_owned()), none),
        (verb @ ("HEAD" | "PUT" | "DELETE"), ["users", u, "groups", g]) => {
            let (user, group) = ((*u).to_owned(), (*g).to_owned());
            match verb {
                "HEAD" => (O::HasUser { user, group }, ok),
                "PUT" => (O::AddUser { user, group }, ok),
                _ => (O::RemoveUser { user, group }, none),
            }
        }
        _ => return Err(unknown(rest)),
    };
    Ok(found)
}

/// The v1 paths after `/api/v1/hubs/{hub}`.
fn v1(method: &Method, rest: &[&str]) -> Result<(Operation, StatusCode), Failure> {
    use Operation as O;
    let (accepted, ok) = (StatusCode::ACCEPTED, StatusCode::OK);
    let id = |s: &str| ConnectionId::from(s);
    let found = match (method.as_str(), rest) {
        ("POST", []) => (O::Send(Scope::Hub), accepted),
        ("POST", ["users", u]) => (O::Send(Scope::User((*u).to_owned())), accepted),
        ("GET", ["users", u]) => (O::Exists(Scope::User((*u).to_owned())), ok),
        ("POST", ["connections", c]) => (O::Send(Scope::Connection(id(c))), accepted),
        ("GET", ["connections", c]) => (O::Exists(Scope::Connection(id(c))), ok),
        ("DELETE", ["connections", c]) => (O::Close(Scope::Connection(id(c))), accepted),
        ("POST", ["groups", g]) => (O::Send(Scope::Group((*g).to_owned())), accepted),
        ("GET", ["groups", g]) => (O::Exists(Scope::Group((*g).to_owned())), ok),
        ("PUT", ["groups", g, "connections", c]) => (O::AddToGroup((*g).to_owned(), id(c)), ok),
        ("DELETE", ["groups", g, "connections", c]) => {
            (O::RemoveFromGroup((*g).to_owned(), id(c)), ok)
        }
        (verb @ ("GET" | "PUT" | "DELETE"), ["groups", g, "users", u]) => {
            let (user, group) = ((*u).to_owned(), (*g).to_owned());
            match verb {
                "GET" => (O::HasUser { user, group }, ok),
                "PUT" => (O::AddUser { user, group }, accepted),
                _ => (O::RemoveUser { user, group }, accepted),
            }
        }
        ("DELETE", ["users", u, "groups"]) => (O::RemoveUserFromAll((*u).to_owned()), ok),
        _ => return Err(unknown(rest)),
    };
    Ok(found)
}

/// A path the API does not have (404), or one it has with another verb (405).
fn unknown(rest: &[&str]) -> Failure {
    let known = matches!(
        rest,
        [] | [":send" | ":closeConnections"]
            | ["connections" | "groups" | "users", _]
            | ["connections" | "groups" | "users", _, _]
            | ["groups" | "users", _, "connections" | "users" | "groups", _]
    );
    if known {
        Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the path does not take this method",
        )
    } else {
        Failure::not_found("no such API path")
    }
}

/// The hub's name as mounted: `{application}_{hub}` with an application, lowercase (the
/// service treats names case-insensitively). Both must start with a letter and hold only
/// letters, digits and underscores.
fn hub_name(hub: &str, application: Option<&str>) -> Result<String, Failure> {
    let valid = |name: &str| {
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid(hub) {
        return Err(Failure::bad_request(
            "hub",
            "a hub name starts with a letter and holds only letters, digits and underscores",
        ));
    }
    match application {
        Some(application) if !valid(application) => Err(Failure::bad_request(
            "application",
            "an application name starts with a letter and holds only letters, digits and underscores",
        )),
        Some(application) => Ok(format!("{application}_{hub}").to_ascii_lowercase()),
        None => Ok(hub.to_ascii_lowercase()),
    }
}

/// Group names of 1 to 1024 characters; connection and user ids not empty.
fn check_names(operation: &Operation) -> Result<(), Failure> {
    use Operation as O;
    let group = |g: &str| {
        if g.is_empty() || g.chars().count() > 1024 {
            Err(Failure::bad_request(
                "group",
                "a group name holds 1 to 1024 characters",
            ))
        } else {
            Ok(())
        }
    };
    let scope = |s: &Scope| match s {
        Scope::Group(g) => group(g),
        _ => Ok(()),
    };
    match operation {
        O::Send(s) | O::Close(s) | O::Exists(s) => scope(s),
        O::AddToGroup(g, _) | O::RemoveFromGroup(g, _) | O::ListGroup(g) => group(g),
        O::AddUser { group: g, .. }
        | O::RemoveUser { group: g, .. }
        | O::HasUser { group: g, .. } => group(g),
        O::Health | O::LeaveAllGroups(_) | O::RemoveUserFromAll(_) => Ok(()),
    }
}

/// The query parameters the API reads.
#[derive(Debug, Default)]
struct Query {
    version: Option<String>,
    application: Option<String>,
    excluded: Vec<String>,
    reason: Option<String>,
    ttl: Option<String>,
}

impl Query {
    fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match name.to_ascii_lowercase().as_str() {
                "api-version" => parsed.version = Some(value),
                "application" => parsed.application = Some(value),
                "excluded" => parsed.excluded.push(value),
                "reason" => parsed.reason = Some(value),
                "ttl" => parsed.ttl = Some(value),
                _ => {}
            }
        }
        parsed
    }

    /// The `api-version`, when given, must be one served.
    fn version(&self) -> Result<(), Failure> {
        match self.version.as_deref() {
            Some(version) if !VERSIONS.contains(&version) => Err(Failure::bad_request(
                "api-version",
                &format!(
                    "api-version '{version}' is not supported; use one of {}",
                    VERSIONS.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_ok(method: Method, path: &str, query: &str) -> Call {
        read(&method, path, Some(query)).unwrap()
    }

    #[test]
    fn reads_the_current_and_v1_paths() {
        let call = read_ok(
            Method::POST,
            "/api/hubs/TestHub/groups/a%20b/:send",
            "excluded=x&excluded=y",
        );
        assert_eq!(call.hub.as_deref(), Some("testhub"));
        assert_eq!(call.operation, Operation::Send(Scope::Group("a b".into())));
        assert_eq!(call.excluded.len(), 2);
        assert_eq!(call.ok, StatusCode::ACCEPTED);
        let call = read_ok(Method::PUT, "/api/v1/hubs/chat/groups/g/users/u", "ttl=5");
        assert_eq!(call.ttl, Some(Duration::from_secs(5)));
        assert_eq!(call.ok, StatusCode::ACCEPTED);
        let call = read_ok(Method::POST, "/api/hubs/chat/:send", "application=App");
        assert_eq!(call.hub.as_deref(), Some("app_chat"));
    }

    #[test]
    fn refuses_bad_input() {
        let status = |m: Method, p: &str, q: &str| read(&m, p, Some(q)).unwrap_err().status;
        assert_eq!(
            status(Method::POST, "/api/hubs/1hub/:send", ""),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Method::POST, "/api/hubs/a-b/:send", ""),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Method::POST, "/api/hubs/h/:send", "api-version=1999-01-01"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Method::PUT, "/api/hubs/h/users/u/groups/g", "ttl=-1"),
            StatusCode::BAD_REQUEST
        );
        let long = format!("/api/hubs/h/groups/{}/:send", "g".repeat(1025));
        assert_eq!(status(Method::POST, &long, ""), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(Method::GET, "/api/hubs/h/:send", ""),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(Method::POST, "/api/hubs/h/nothing/here/at/all", ""),
            StatusCode::NOT_FOUND
        );
    }
}
