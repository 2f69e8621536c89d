//! One session of the connection: dispatching what the server sends, pending calls and
//! streams, the transport link, keep-alive, and reconnecting.

use super::*;
use tracing::Instrument;

impl Inner {
    pub(super) fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    pub(super) fn upload_ids(&self, uploads: &[Upload]) -> Vec<String> {
        uploads.iter().map(|_| self.next_id()).collect()
    }

    pub(super) fn start_uploads(self: Arc<Self>, ids: Vec<String>, uploads: Vec<Upload>) {
        for (id, mut upload) in ids.into_iter().zip(uploads) {
            let inner = self.clone();
            tokio::spawn(async move {
                while let Some(item) = upload.stream.next().await {
                    let protocol = inner.config.protocol;
                    let encoded = match item.encode(protocol) {
                        Ok(value) => value,
                        Err(error) => {
                            tracing::debug!(%error, "cannot encode an upload item");
                            return;
                        }
                    };
                    drop(item);
                    let sent = inner
                        .send_message(|_| {
                            Ok(HubMessage::StreamItem(StreamItem {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                                item: encoded,
                            }))
                        })
                        .await;
                    if sent.is_err() {
                        return;
                    }
                }
                let _ = inner
                    .send_message(|_| Ok(HubMessage::Completion(Completion::void(id.clone()))))
                    .await;
            });
        }
    }

    /// Encodes a message for the current session's protocol and queues it.
    pub(super) async fn send_message(
        &self,
        build: impl FnOnce(Protocol) -> Result<HubMessage, InvokeError>,
    ) -> Result<(), InvokeError> {
        let (out, protocol, wrote) = {
            let session = lock(&self.session);
            let session = session.as_ref().ok_or(InvokeError::NotConnected)?;
            (session.out.clone(), session.protocol, session.wrote.clone())
        };
        let message = build(protocol)?;
        let mut bytes = Vec::new();
        protocol
            .encode(&message, &mut bytes)
            .map_err(|e| InvokeError::Encode(e.to_string()))?;
        out.send(Outgoing {
            bytes: bytes.into(),
            text: protocol.transfer_format() == TransferFormat::Text,
        })
        .await
        .map_err(|_| InvokeError::NotConnected)?;
        wrote.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn fail_all(&self, reason: &str) {
        for (_, waiting) in lock(&self.pending).drain() {
            let _ = waiting.send(Err(InvokeError::Closed(reason.to_owned())));
        }
        for (_, stream) in lock(&self.streams).drain() {
            let _ = stream.try_send(Err(InvokeError::Closed(reason.to_owned())));
        }
    }

    pub(super) async fn headers(&self) -> HeaderMap {
        let mut headers = self.config.headers.clone();
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(
                header::USER_AGENT,
                HeaderValue::from_static(concat!(
                    "Microsoft SignalR/9.0 (",
                    env!("CARGO_PKG_VERSION"),
                    "; Unknown OS; Rust hubs; Unknown Runtime Version)"
                )),
            );
        }
        if let Some(provider) = &self.config.access_token
            && let Some(token) = provider().await
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    /// Negotiates, opens a transport and completes the handshake; then runs the session in
    /// the background. Returns a receiver that fires when the session ends.
    pub(super) async fn connect(self: Arc<Self>) -> Result<oneshot::Receiver<Ended>, StartError> {
        let config = &self.config;
        let mut headers = self.headers().await;
        let protocol = config.protocol;
        let (url, token, connection_id, offered) = if config.skip_negotiation {
            (
                config.url.clone(),
                None,
                None,
                vec![(
                    TransportKind::WebSockets,
                    vec!["Text".to_owned(), "Binary".to_owned()],
                )],
            )
        } else {
            let negotiated = transport::negotiate(&self.http, &config.url, &headers).await?;
            if let Some(token) = &negotiated.access_token
                && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
            {
                headers.insert(header::AUTHORIZATION, value);
            }
            (
                negotiated.url,
                negotiated.token,
                negotiated.connection_id,
                negotiated.transports,
            )
        };
        let format = match protocol.transfer_format() {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        };
        let mut errors = Vec::new();
        let mut link = None;
        for kind in &config.transports {
            let Some((_, formats)) = offered.iter().find(|(k, _)| k == kind) else {
                continue;
            };
            if !formats.iter().any(|f| f == format) {
                errors.push(format!(
                    "{} does not support the {format} transfer format.",
                    kind.name()
                ));
                continue;
            }
            match transport::connect(
                &self.http,
                *kind,
                &url,
                token.as_deref(),
                &headers,
                protocol == Protocol::MessagePack,
            )
            .await
            {
                Ok(opened) => {
                    link = Some(opened);
                    break;
                }
                Err(error) => errors.push(format!("{}: {error}", kind.name())),
            }
        }
        let Some(mut link) = link else {
            return Err(StartError::Transport(if errors.is_empty() {
                "None of the transports is offered by the server.".to_owned()
            } else {
                errors.join(" ")
            }));
        };

        // The handshake, always JSON text.
        let mut handshake = Vec::new();
        HandshakeRequest::new(protocol.name(), 1).encode(&mut handshake);
        let _ = link
            .out
            .send(Outgoing {
                bytes: handshake.into(),
                text: true,
            })
            .await;
        let mut buffer = BytesMut::new();
        let deadline = tokio::time::sleep(config.handshake_timeout);
        tokio::pin!(deadline);
        loop {
            match HandshakeResponse::decode(&mut buffer, None) {
                Ok(Some(response)) => {
                    if let Some(error) = response.error {
                        link.stop.cancel();
                        return Err(StartError::Handshake(error));
                    }
                    break;
                }
                Ok(None) => {}
                Err(error) => {
                    link.stop.cancel();
                    return Err(StartError::Handshake(error.to_string()));
                }
            }
            tokio::select! {
                chunk = link.incoming.recv() => match chunk {
                    Some(chunk) => buffer.extend_from_slice(&chunk),
                    None => return Err(StartError::Handshake("the server closed the connection during the handshake".to_owned())),
                },
                () = &mut deadline => {
                    link.stop.cancel();
                    return Err(StartError::Handshake("the handshake timed out".to_owned()));
                }
            }
        }

        // The official clients ping right after the handshake, before `start` returns
        // (not on long polling).
        if link.transport != TransportKind::LongPolling {
            let mut ping = Vec::new();
            if protocol.encode(&HubMessage::Ping, &mut ping).is_ok() {
                let _ = link
                    .out
                    .send(Outgoing {
                        bytes: ping.into(),
                        text: protocol.transfer_format() == TransferFormat::Text,
                    })
                    .await;
            }
        }
        let wrote = Arc::new(AtomicBool::new(false));
        *lock(&self.session) = Some(Session {
            out: link.out.clone(),
            protocol,
            stop: link.stop.clone(),
            connection_id,
            transport: link.transport,
            wrote: wrote.clone(),
        });
        let (ended_tx, ended_rx) = oneshot::channel();
        tokio::spawn(self.clone().run(link, buffer.freeze(), wrote, ended_tx));
        Ok(ended_rx)
    }

    /// Reads messages until the session ends.
    pub(super) async fn run(
        self: Arc<Self>,
        mut link: Link,
        leftover: Bytes,
        wrote: Arc<AtomicBool>,
        ended: oneshot::Sender<Ended>,
    ) {
        let protocol = self.config.protocol;
        let mut decoder = protocol.decoder().with_max_message_size(None);
        decoder.push(&leftover);
        let pings = link.transport != TransportKind::LongPolling;
        let mut last_received = Instant::now();
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis(250).min(self.config.keep_alive));
        let mut last_ping = Instant::now();
        let result = 'session: loop {
            loop {
                let message = match decoder.next_message() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(DecodeError::UnknownMessageType(_)) => continue,
                    Err(error) => {
                        break 'session Ended {
                            error: Some(format!("invalid message from the server: {error}")),
                            allow_reconnect: true,
                        };
                    }
                };
                if let Some(end) = self.handle(message, protocol).await {
                    link.stop.cancel();
                    let _ = ended.send(end);
                    return;
                }
            }
            tokio::select! {
                // Data first: a Close that arrived just before the transport ended must be
                // read, or its error and reconnect flag would be lost.
                biased;
                chunk = link.incoming.recv() => match chunk {
                    Some(chunk) => {
                        last_received = Instant::now();
                        decoder.push(&chunk);
                    }
                    None => break Ended { error: None, allow_reconnect: true },
                },
                () = link.stop.cancelled() => {
                    let mut drained = false;
                    while let Ok(chunk) = link.incoming.try_recv() {
                        decoder.push(&chunk);
                        drained = true;
                    }
                    if !drained {
                        break Ended { error: None, allow_reconnect: true };
                    }
                }
                _ = heartbeat.tick(), if pings => {
                    if last_received.elapsed() > self.config.server_timeout {
                        break Ended {
                            error: Some(wire::SERVER_TIMEOUT.to_owned()),
                            allow_reconnect: true,
                        };
                    }
                    if last_ping.elapsed() >= self.config.keep_alive {
                        last_ping = Instant::now();
                        if !wrote.swap(false, Ordering::Relaxed) {
                            let _ = self.send_message(|_| Ok(HubMessage::Ping)).await;
                            wrote.store(false, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        link.stop.cancel();
        let _ = ended.send(result);
    }

    /// Handles one message; `Some` ends the session.
    pub(super) async fn handle(
        self: &Arc<Self>,
        message: HubMessage,
        protocol: Protocol,
    ) -> Option<Ended> {
        match message {
            HubMessage::Completion(completion) => {
                if let Some(waiting) = lock(&self.pending).remove(&completion.invocation_id) {
                    let _ = waiting.send(Ok(completion.outcome));
                } else if let Some(stream) = lock(&self.streams).remove(&completion.invocation_id)
                    && let Outcome::Error(error) = completion.outcome
                {
                    let _ = stream.try_send(Err(InvokeError::Server(error)));
                }
            }
            HubMessage::StreamItem(item) => {
                let stream = lock(&self.streams).get(&item.invocation_id).cloned();
                if let Some(stream) = stream {
                    let _ = stream.send(Ok(item.item)).await;
                }
            }
            HubMessage::Invocation(invocation) => {
                let handlers = self
                    .handlers
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&invocation.target.to_lowercase())
                    .cloned()
                    .unwrap_or_default();
                let inner = self.clone();
                // The server's call, handled here: its span continues the server's trace.
                let span = tracing::info_span!(
                    "signalr.invocation",
                    otel.name = invocation.target.as_str(),
                    otel.kind = "server",
                    rpc.system = "signalr",
                    rpc.method = invocation.target.as_str(),
                );
                hubs_core::trace_context::continue_trace(&span, &invocation.headers);
                let handling = async move {
                    let mut replies = Vec::new();
                    for handler in &handlers {
                        replies.push(handler(invocation.arguments.clone(), protocol).await);
                    }
                    let Some(id) = invocation.invocation_id else {
                        return;
                    };
                    let mut values = replies.into_iter().filter(|r| !matches!(r, Ok(None)));
                    let outcome = match (values.next(), values.next()) {
                        (Some(_), Some(_)) => {
                            Outcome::Error("Client provided multiple results.".to_owned())
                        }
                        (Some(Ok(Some(value))), None) => Outcome::Result(value),
                        (Some(Err(error)), None) => Outcome::Error(error),
                        _ => Outcome::Error(wire::NO_CLIENT_RESULT.to_owned()),
                    };
                    let _ = inner
                        .send_message(|_| {
                            Ok(HubMessage::Completion(Completion {
                                headers: Default::default(),
                                invocation_id: id.clone(),
                                outcome,
                            }))
                        })
                        .await;
                };
                tokio::spawn(handling.instrument(span));
            }
            HubMessage::Close(close) => {
                return Some(Ended {
                    error: close.error,
                    allow_reconnect: close.allow_reconnect,
                });
            }
            _ => {}
        }
        None
    }

    /// Waits for a session to end, then reconnects or closes.
    pub(super) async fn supervise(self: Arc<Self>, mut ended: oneshot::Receiver<Ended>) {
        loop {
            let end = (&mut ended).await.unwrap_or(Ended {
                error: None,
                allow_reconnect: false,
            });
            lock(&self.session).take();
            let reason = end.error.clone();
            let failure = match &reason {
                Some(error) => wire::server_closed_with_error(error),
                None => wire::INVOCATION_CANCELED_CLOSED.to_owned(),
            };
            self.fail_all(&failure);
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Some(policy) = self.config.retry.clone().filter(|_| end.allow_reconnect) else {
                *lock(&self.state) = ConnectionState::Disconnected;
                let _ = self.events.send(ConnectionEvent::Closed(reason));
                return;
            };
            *lock(&self.state) = ConnectionState::Reconnecting;
            let _ = self
                .events
                .send(ConnectionEvent::Reconnecting(reason.clone()));
            let lost = Instant::now();
            let mut retries = 0;
            let reconnected = loop {
                let Some(delay) = policy.next_delay(retries, lost.elapsed()) else {
                    break None;
                };
                tokio::time::sleep(delay).await;
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                match self.clone().connect().await {
                    Ok(next) => break Some(next),
                    Err(error) => tracing::debug!(%error, retries, "reconnect attempt failed"),
                }
                retries += 1;
            };
            match reconnected {
                Some(next) => {
                    ended = next;
                    *lock(&self.state) = ConnectionState::Connected;
                    let id = lock(&self.session)
                        .as_ref()
                        .and_then(|s| s.connection_id.clone());
                    let _ = self.events.send(ConnectionEvent::Reconnected(id));
                }
                None => {
                    *lock(&self.state) = ConnectionState::Disconnected;
                    let _ = self.events.send(ConnectionEvent::Closed(reason));
                    return;
                }
            }
        }
    }
}
