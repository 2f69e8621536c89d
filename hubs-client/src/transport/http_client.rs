//! The HTTP client every request goes through (negotiate, Server-Sent Events, long polling,
//! POSTs), with TLS when the `tls` feature is on.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Config;
use crate::error::StartError;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// What the transports connect with: an HTTP client, and the TLS configuration for
/// `wss://`.
#[derive(Clone)]
pub(crate) struct Net {
    http: Client<Connector, Full<Bytes>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Result<std::sync::Arc<rustls::ClientConfig>, String>,
}

impl Net {
    pub(crate) fn new(config: &Config) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        #[cfg(feature = "tls")]
        {
            connector.enforce_http(false);
            let tls = config.tls.client_config().map_err(|e| e.to_string());
            // A bad configuration is refused per request (`check`); the connector still
            // needs one.
            let mut rustls = match &tls {
                Ok(tls) => (**tls).clone(),
                Err(_) => crate::tls::fallback_config(),
            };
            // hyper-rustls sets the ALPN protocols itself.
            rustls.alpn_protocols.clear();
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector);
            Self {
                http: Client::builder(TokioExecutor::new()).build(https),
                tls,
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = config;
            Self {
                http: Client::builder(TokioExecutor::new()).build(connector),
            }
        }
    }

    /// Whether `url` can be reached: an `https` URL needs TLS.
    pub(crate) fn check(&self, url: &str) -> Result<(), StartError> {
        if url.starts_with("https://") || url.starts_with("wss://") {
            #[cfg(feature = "tls")]
            return self
                .tls
                .as_ref()
                .map(|_| ())
                .map_err(|e| StartError::Tls(e.clone()));
            #[cfg(not(feature = "tls"))]
            return Err(StartError::Tls(
                "this client was built without the `tls` feature".to_owned(),
            ));
        }
        Ok(())
    }

    /// Sends a request.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        self.check(&request.uri().to_string())
            .map_err(|e| e.to_string())?;
        self.http.request(request).await.map_err(|e| {
            // The cause (a refused connection, a certificate) is what users need.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        })
    }
}

/// A request with the connection's headers (and the header the official clients add).
pub(crate) fn request(
    method: Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, StartError> {
    let uri: Uri = url.parse().map_err(|_| StartError::Url(url.to_owned()))?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|_| StartError::Url(url.to_owned()))?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    request.headers_mut().insert(
        "x-requested-with",
        HeaderValue::from_static("XMLHttpRequest"),
    );
    Ok(request)
}

/// The status and the whole body of a response, refused past `limit` bytes (a body that
/// never ends included).
///
/// # Errors
///
/// The body failed, or is longer than `limit`.
pub(crate) async fn read_body(
    response: hyper::Response<hyper::body::Incoming>,
    limit: usize,
) -> Result<(StatusCode, Bytes), String> {
    let status = response.status();
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                format!("the response is longer than {limit} bytes")
            } else {
                e.to_string()
            }
        })?
        .to_bytes();
    Ok((status, body))
}
