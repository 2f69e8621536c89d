//! The routing steps answer as the official server does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::*;
use crate::server::Server;

fn echo() -> HubService {
    Server::new()
        .connection_handler("/echo", |mut connection| async move {
            while let Some(message) = connection.recv().await {
                if connection.send(message).await.is_err() {
                    break;
                }
            }
        })
        .build()
        .expect("builds")
}

async fn call(
    service: &HubService,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from_static(b"{}\x1e")))
        .unwrap();
    let response = service.handle(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A request (method, URI, headers) and the status and text it must get.
type Case<'a> = (
    Method,
    &'a str,
    &'a [(&'a str, &'a str)],
    StatusCode,
    &'a str,
);

async fn check(service: &HubService, cases: &[Case<'_>]) {
    for (method, uri, headers, status, text) in cases {
        let answer = call(service, method.clone(), uri, headers).await;
        assert_eq!(
            answer,
            (*status, (*text).to_owned()),
            "{method} {uri} {headers:?}"
        );
    }
}

async fn negotiate(service: &HubService) -> String {
    let (status, body) = call(
        service,
        Method::POST,
        "/echo/negotiate?negotiateVersion=1",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["connectionToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn requests_get_the_official_answers() {
    use StatusCode as S;
    let service = echo();
    let upgrade = [("upgrade", "websocket"), ("connection", "Upgrade")];
    let events = [("accept", "text/event-stream")];
    check(
        &service,
        &[
            (Method::GET, "/nowhere", &[], S::NOT_FOUND, ""),
            (Method::POST, "/nowhere/negotiate", &[], S::NOT_FOUND, ""),
            (
                Method::GET,
                "/echo/negotiate",
                &[],
                S::METHOD_NOT_ALLOWED,
                "",
            ),
            (
                Method::GET,
                "/echo",
                &[],
                S::BAD_REQUEST,
                wire::CONNECTION_ID_REQUIRED,
            ),
            (
                Method::GET,
                "/echo?id=no",
                &[],
                S::NOT_FOUND,
                wire::NO_CONNECTION_WITH_ID,
            ),
            // A WebSocket without negotiate, but without a key either.
            (Method::GET, "/echo", &upgrade, S::BAD_REQUEST, ""),
        ],
    )
    .await;

    let token = negotiate(&service).await;
    let uri = &format!("/echo?id={token}");
    // No transport yet; the POST is kept for it. Then the first long poll starts
    // long polling and returns at once.
    check(
        &service,
        &[
            (
                Method::DELETE,
                uri,
                &[],
                S::BAD_REQUEST,
                wire::DELETE_NOT_ALLOWED,
            ),
            (
                Method::PUT,
                uri,
                &[],
                S::NOT_FOUND,
                wire::NO_CONNECTION_WITH_ID,
            ),
            (Method::POST, uri, &[], S::OK, ""),
            (Method::GET, uri, &[], S::OK, ""),
        ],
    )
    .await;
    // Long polling runs; the handler echoes what was POSTed early.
    check(
        &service,
        &[
            (
                Method::GET,
                uri,
                &events,
                S::BAD_REQUEST,
                wire::TRANSPORT_CHANGED,
            ),
            (
                Method::GET,
                uri,
                &upgrade,
                S::BAD_REQUEST,
                wire::TRANSPORT_CHANGED,
            ),
            (Method::PUT, uri, &[], S::METHOD_NOT_ALLOWED, ""),
            (Method::GET, uri, &[], S::OK, "{}\u{1e}"),
            (Method::DELETE, uri, &[], S::ACCEPTED, ""),
        ],
    )
    .await;
}
