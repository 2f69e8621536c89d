//! Who may call the API: a bearer JWT signed HS256 with the access key, whose audience is
//! the request's URL without its query and which has not expired, as the Azure SignalR
//! Service checks it; or an [`Authenticator`] of the application's.

use std::sync::Arc;

use http::{HeaderMap, Uri, header};
use hubs_core::{Authenticator, Request};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::reply::Failure;

/// How the API's callers are checked.
#[derive(Clone)]
pub(crate) enum Access {
    /// Tokens signed with this access key.
    Key(DecodingKey),
    /// The application's authenticator: a request is allowed when it authenticates a user.
    Authenticator(Arc<dyn Authenticator>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Key(_) => "Access::Key",
            Self::Authenticator(_) => "Access::Authenticator",
        })
    }
}

impl Access {
    /// Whether the request may call the API.
    pub(crate) async fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Failure> {
        match self {
            Self::Key(key) => validate(key, &audiences(uri, headers), bearer(headers)?),
            Self::Authenticator(authenticator) => {
                match authenticator
                    .authenticate(&Request::owned(uri, headers))
                    .await
                {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(Failure::unauthorized("a bearer token is required")),
                    Err(error) => Err(Failure::unauthorized(&error.to_string())),
                }
            }
        }
    }
}

/// The token of `Authorization: Bearer …`.
fn bearer(headers: &HeaderMap) -> Result<&str, Failure> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Failure::unauthorized("a bearer token is required"))
}

/// The request's URL without its query, as `http` and as `https` (behind a proxy that
/// ends TLS the server cannot tell), on the host the request names, with its path as sent
/// and percent-decoded.
fn audiences(uri: &Uri, headers: &HeaderMap) -> Vec<String> {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    // As sent (`%20`), and decoded (a caller that signed the URL before encoding it).
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut audiences = Vec::new();
    for scheme in ["http", "https"] {
        audiences.push(format!("{scheme}://{host}{path}"));
        if decoded != path {
            audiences.push(format!("{scheme}://{host}{decoded}"));
        }
    }
    audiences
}

fn validate(key: &DecodingKey, audiences: &[String], token: &str) -> Result<(), Failure> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "aud"]);
    validation.set_audience(audiences);
    jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
        .map(|_| ())
        .map_err(|error| Failure::unauthorized(&format!("the bearer token is not valid: {error}")))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    fn token(aud: &str, exp_from_now: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = serde_json::json!({ "aud": aud, "exp": now + exp_from_now });
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap()
    }

    #[test]
    fn checks_key_audience_and_expiry() {
        let key = DecodingKey::from_secret(b"k");
        let uri: Uri = "/api/hubs/chat/:send?api-version=2022-06-01"
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "localhost:5000".parse().unwrap());
        let auds = audiences(&uri, &headers);
        let good = "http://localhost:5000/api/hubs/chat/:send";
        assert!(validate(&key, &auds, &token(good, 60)).is_ok());
        assert!(validate(&key, &auds, &token(good, -5)).is_err());
        assert!(
            validate(
                &key,
                &auds,
                &token("http://localhost:5000/api/hubs/other/:send", 60)
            )
            .is_err()
        );
        assert!(validate(&DecodingKey::from_secret(b"other"), &auds, &token(good, 60)).is_err());
    }
}
