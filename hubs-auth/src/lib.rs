//! Authentication for hubs: [`JwtAuthenticator`] validates bearer JWTs (HS256, RS256,
//! ES256; issuer, audience, expiry with leeway; one key or a key set chosen by `kid`) and
//! turns their claims into a [`User`]; [`JwtIssuer`] signs tokens (for tests, examples and
//! services that issue their own). Both are thin layers over the `jsonwebtoken` crate,
//! which does the cryptography and the claim checks.
//!
//! ```
//! use std::time::Duration;
//! use hubs_auth::{JwtAuthenticator, JwtIssuer};
//!
//! let secret = b"a secret of at least thirty-two bytes!!";
//! let token = JwtIssuer::hs256(secret)
//!     .issuer("chat")
//!     .issue("42", &["admin"], Duration::from_secs(60));
//!
//! let authenticator = JwtAuthenticator::hs256(secret).issuer("chat");
//! let user = authenticator.validate(&token).unwrap();
//! assert_eq!(user.id(), Some("42"));
//! assert!(user.is_in_role("admin"));
//! ```
//!
//! Mount it on a server with `Server::authenticate(authenticator)` (or per hub with
//! `EndpointOptions::authenticate`); the token is read from `Authorization: Bearer …` or,
//! for browsers' WebSockets and Server-Sent Events, the `access_token` query parameter.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubs_core::{AuthError, Authenticator, BoxFuture, Request, User};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Validates bearer JWTs and turns their claims into a [`User`] (see
/// [`User::from_claims`]).
#[derive(Clone)]
pub struct JwtAuthenticator {
    keys: Keys,
    validation: Validation,
    /// How far past `exp` a token is still accepted, exactly (`validation.leeway` holds
    /// it rounded up to whole seconds, for `nbf`).
    leeway: Duration,
}

/// The default [`JwtAuthenticator::leeway`]: 30 s.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

#[derive(Clone)]
enum Keys {
    One(DecodingKey),
    /// By `kid`, each with its algorithm.
    Set(HashMap<String, (DecodingKey, Algorithm)>),
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::One(_) => 1,
            Keys::Set(set) => set.len(),
        };
        f.debug_struct("JwtAuthenticator")
            .field("keys", &keys)
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway", &self.leeway)
            .finish()
    }
}

fn invalid(error: impl std::fmt::Display) -> AuthError {
    AuthError(format!("invalid key: {error}"))
}

impl JwtAuthenticator {
    fn with(keys: Keys, algorithms: Vec<Algorithm>) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // No audience unless one is asked for (jsonwebtoken checks `aud` when present).
        validation.validate_aud = false;
        // `exp` is checked here, to the instant (jsonwebtoken's check is in whole seconds
        // and accepts `exp == now`, which RFC 7519 section 4.1.4 does not).
        validation.validate_exp = false;
        Self {
            keys,
            validation,
            leeway: Duration::ZERO,
        }
        .leeway(DEFAULT_LEEWAY)
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(
            Keys::One(DecodingKey::from_secret(secret)),
            vec![Algorithm::HS256],
        )
    }

    /// RS256 with an RSA public key in PEM.
    ///
    /// # Errors
    ///
    /// When the PEM text is not an RSA public key.
    pub fn rs256_pem(public_key: &[u8]) -> Result<Self, AuthError> {
        let key = DecodingKey::from_rsa_pem(public_key).map_err(invalid)?;
        Ok(Self::with(Keys::One(key), vec![Algorithm::RS256]))
    }

    /// ES256 with an EC (P-256) public key in PEM.
    ///
    /// # Errors
    ///
    /// When the PEM text is not an EC public key.
    pub fn es256_pem(public_key: &[u8]) -> Result<Self, AuthError> {
        let key = DecodingKey::from_ec_pem(public_key).map_err(invalid)?;
        Ok(Self::with(Keys::One(key), vec![Algorithm::ES256]))
    }

    /// A key set (JWKS, as an identity provider publishes it): each token names its key
    /// with `kid`.
    ///
    /// # Errors
    ///
    /// When the text is not a JWKS, or a key has no `kid` or algorithm, or cannot be used.
    pub fn jwks(json: &str) -> Result<Self, AuthError> {
        let set: JwkSet = serde_json::from_str(json).map_err(invalid)?;
        let mut keys = HashMap::new();
        let mut algorithms = Vec::new();
        for jwk in &set.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| invalid("a key without `kid`"))?;
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|alg| alg.to_string().parse::<Algorithm>().ok())
                .ok_or_else(|| invalid(format!("key `{kid}` has no usable `alg`")))?;
            let key = DecodingKey::from_jwk(jwk).map_err(invalid)?;
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
            keys.insert(kid, (key, algorithm));
        }
        if keys.is_empty() {
            return Err(invalid("an empty key set"));
        }
        Ok(Self::with(Keys::Set(keys), algorithms))
    }

    /// Requires the `iss` claim to be `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self
    }

    /// Requires the `aud` claim to name `audience`.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self
    }

    /// How far past `exp` (or before `nbf`) a token is still accepted, for clocks that
    /// disagree: [`DEFAULT_LEEWAY`] (30 s) unless set. A token is accepted while the time
    /// is *before* `exp` plus the leeway, and the [`User`] it yields expires at that same
    /// instant, so a hub that closes connections on expiry
    /// (`HubOptions::close_on_authentication_expiration`) closes them exactly when this
    /// authenticator starts refusing the token: a client cannot reconnect with it after
    /// the close.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hubs_auth::{JwtAuthenticator, JwtIssuer};
    ///
    /// let secret = b"a secret of at least thirty-two bytes!!";
    /// let strict = JwtAuthenticator::hs256(secret).leeway(Duration::ZERO);
    /// let token = JwtIssuer::hs256(secret).issue("7", &[], Duration::ZERO);
    /// assert!(strict.validate(&token).is_err(), "exp is now: expired");
    /// ```
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.validation.leeway = leeway.as_secs() + u64::from(leeway.subsec_nanos() > 0);
        self
    }

    /// Validates `token` and returns its user.
    ///
    /// # Errors
    ///
    /// [`AuthError`] for a bad signature, an unknown key, an expired token, or a wrong
    /// issuer or audience.
    pub fn validate(&self, token: &str) -> Result<User, AuthError> {
        let refused = |e: jsonwebtoken::errors::Error| AuthError(format!("invalid token: {e}"));
        let claims = match &self.keys {
            Keys::One(key) => {
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            }
            Keys::Set(keys) => {
                let header = jsonwebtoken::decode_header(token).map_err(refused)?;
                let kid = header.kid.unwrap_or_default();
                let (key, algorithm) = keys
                    .get(&kid)
                    .ok_or_else(|| AuthError(format!("invalid token: unknown key `{kid}`")))?;
                let mut validation = self.validation.clone();
                validation.algorithms = vec![*algorithm];
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            }
        }
        .map_err(refused)?;
        // `exp` is required (jsonwebtoken's required claims); accepted while
        // now < exp + leeway, and the user expires at that instant.
        let exp = claims
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError("invalid token: `exp` is not a number of seconds".into()))?;
        let until = UNIX_EPOCH + Duration::from_secs(exp) + self.leeway;
        if SystemTime::now() >= until {
            return Err(AuthError("invalid token: ExpiredSignature".into()));
        }
        Ok(User::from_claims(claims.claims).with_expiry(until))
    }
}

impl Authenticator for JwtAuthenticator {
    /// No token: anonymous (`Ok(None)`); a token that does not validate: `Err` (`401`).
    fn authenticate(&self, request: &Request) -> BoxFuture<Result<Option<User>, AuthError>> {
        let result = match request.access_token() {
            None => Ok(None),
            Some(token) => self.validate(&token).map(Some),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Signs JWTs: `sub`, `name`, `role`, `iat`, `exp`, and the issuer and audience when set.
#[derive(Clone)]
pub struct JwtIssuer {
    key: EncodingKey,
    header: Header,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("algorithm", &self.header.alg)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            issuer: None,
            audience: None,
        }
    }

    /// ES256 with an EC (P-256) private key in PEM (PKCS#8).
    ///
    /// # Errors
    ///
    /// When the PEM text is not an EC private key.
    pub fn es256_pem(private_key: &[u8]) -> Result<Self, AuthError> {
        Ok(Self {
            key: EncodingKey::from_ec_pem(private_key).map_err(invalid)?,
            header: Header::new(Algorithm::ES256),
            issuer: None,
            audience: None,
        })
    }

    /// RS256 with an RSA private key in PEM.
    ///
    /// # Errors
    ///
    /// When the PEM text is not an RSA private key.
    pub fn rs256_pem(private_key: &[u8]) -> Result<Self, AuthError> {
        Ok(Self {
            key: EncodingKey::from_rsa_pem(private_key).map_err(invalid)?,
            header: Header::new(Algorithm::RS256),
            issuer: None,
            audience: None,
        })
    }

    /// Names the signing key in the header (`kid`), for validators with a key set.
    #[must_use]
    pub fn key_id(mut self, kid: &str) -> Self {
        self.header.kid = Some(kid.to_owned());
        self
    }

    /// Sets the `iss` claim.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Sets the `aud` claim.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    /// A token for user `id` with `roles`, valid for `lifetime`.
    pub fn issue(&self, id: &str, roles: &[&str], lifetime: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = Map::new();
        claims.insert("sub".into(), id.into());
        claims.insert("name".into(), id.into());
        if !roles.is_empty() {
            claims.insert(
                "role".into(),
                roles.iter().map(|r| Value::from(*r)).collect(),
            );
        }
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + lifetime.as_secs()).into());
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), issuer.clone().into());
        }
        if let Some(audience) = &self.audience {
            claims.insert("aud".into(), audience.clone().into());
        }
        self.sign(&claims)
    }

    /// A token with exactly these claims.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        // Signing a map of JSON values with an HMAC or a parsed key cannot fail.
        jsonwebtoken::encode(&self.header, claims, &self.key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let authenticator = JwtAuthenticator::hs256(SECRET)
            .issuer("hubs")
            .audience("chat")
            .leeway(Duration::ZERO);
        let issuer = JwtIssuer::hs256(SECRET).issuer("hubs").audience("chat");
        let good = issuer.issue("7", &["a", "b"], Duration::from_secs(60));
        let user = authenticator.validate(&good).expect("valid");
        assert_eq!(user.roles(), ["a", "b"]);

        let forged = JwtIssuer::hs256(b"another secret, also long enough!!")
            .issuer("hubs")
            .audience("chat")
            .issue("7", &["admin"], Duration::from_secs(60));
        assert!(authenticator.validate(&forged).is_err(), "bad signature");

        let mut expired = Map::new();
        expired.insert("sub".into(), "7".into());
        expired.insert("exp".into(), 1_000.into());
        expired.insert("iss".into(), "hubs".into());
        expired.insert("aud".into(), "chat".into());
        let expired = issuer.sign(&expired);
        let error = authenticator.validate(&expired).expect_err("expired");
        assert!(error.0.contains("Expired"), "{error}");

        let elsewhere = JwtIssuer::hs256(SECRET)
            .issuer("other")
            .audience("chat")
            .issue("7", &[], Duration::from_secs(60));
        assert!(authenticator.validate(&elsewhere).is_err(), "wrong issuer");
        assert!(authenticator.validate("not.a.token").is_err());
    }

    #[test]
    fn a_token_is_expired_from_the_instant_of_exp_plus_the_leeway() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let with_exp = |exp: u64| {
            let mut claims = Map::new();
            claims.insert("sub".into(), "7".into());
            claims.insert("exp".into(), exp.into());
            JwtIssuer::hs256(SECRET).sign(&claims)
        };
        let strict = JwtAuthenticator::hs256(SECRET).leeway(Duration::ZERO);
        // RFC 7519: the current time must be before `exp`; within the second of `exp`
        // (which jsonwebtoken alone accepts) it is not.
        assert!(strict.validate(&with_exp(now)).is_err(), "exp == now");
        let user = strict.validate(&with_exp(now + 5)).expect("valid");
        assert_eq!(
            user.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(now + 5))
        );

        let lenient = JwtAuthenticator::hs256(SECRET).leeway(Duration::from_millis(10_500));
        let user = lenient
            .validate(&with_exp(now - 5))
            .expect("within the leeway");
        assert_eq!(
            user.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(now - 5) + Duration::from_millis(10_500)),
            "the user expires when the token stops being accepted"
        );
        assert!(lenient.validate(&with_exp(now - 11)).is_err());

        let mut no_exp = Map::new();
        no_exp.insert("sub".into(), "7".into());
        assert!(
            strict
                .validate(&JwtIssuer::hs256(SECRET).sign(&no_exp))
                .is_err(),
            "exp is required"
        );
        let mut text_exp = no_exp.clone();
        text_exp.insert("exp".into(), "soon".into());
        assert!(
            strict
                .validate(&JwtIssuer::hs256(SECRET).sign(&text_exp))
                .is_err()
        );
    }

    #[test]
    fn es256_keys_made_at_test_time() {
        let key = rcgen::KeyPair::generate().expect("a P-256 key");
        let issuer = JwtIssuer::es256_pem(key.serialize_pem().as_bytes()).expect("private key");
        let authenticator =
            JwtAuthenticator::es256_pem(key.public_key_pem().as_bytes()).expect("public key");
        let token = issuer.issue("ec", &[], Duration::from_secs(60));
        assert_eq!(
            authenticator.validate(&token).expect("valid").id(),
            Some("ec")
        );
        let other = rcgen::KeyPair::generate().expect("another key");
        let stranger = JwtAuthenticator::es256_pem(other.public_key_pem().as_bytes()).expect("key");
        assert!(stranger.validate(&token).is_err(), "another key refuses it");
        assert!(
            JwtAuthenticator::hs256(SECRET).validate(&token).is_err(),
            "wrong algorithm"
        );
    }

    #[test]
    fn a_key_set_picks_the_key_by_kid() {
        use base64::Engine;
        let k = |secret: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let second: &[u8] = b"fedcba9876543210fedcba9876543210";
        let jwks = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"one","alg":"HS256","k":"{}"}},{{"kty":"oct","kid":"two","alg":"HS256","k":"{}"}}]}}"#,
            k(SECRET),
            k(second)
        );
        let authenticator = JwtAuthenticator::jwks(&jwks).expect("a key set");
        let by_two =
            JwtIssuer::hs256(second)
                .key_id("two")
                .issue("2", &[], Duration::from_secs(60));
        assert_eq!(
            authenticator.validate(&by_two).expect("valid").id(),
            Some("2")
        );
        let mislabelled =
            JwtIssuer::hs256(second)
                .key_id("one")
                .issue("2", &[], Duration::from_secs(60));
        assert!(
            authenticator.validate(&mislabelled).is_err(),
            "signed by another key"
        );
        let unnamed = JwtIssuer::hs256(SECRET).issue("1", &[], Duration::from_secs(60));
        assert!(authenticator.validate(&unnamed).is_err(), "no kid");
    }

    #[tokio::test]
    async fn a_request_without_a_token_is_anonymous() {
        let authenticator = JwtAuthenticator::hs256(SECRET);
        let anonymous = Request::new("/hub".parse().unwrap(), Default::default());
        assert_eq!(authenticator.authenticate(&anonymous).await, Ok(None));
        let token = JwtIssuer::hs256(SECRET).issue("9", &[], Duration::from_secs(60));
        let request = Request::new(
            format!("/hub?access_token={token}").parse().unwrap(),
            Default::default(),
        );
        let user = authenticator.authenticate(&request).await.expect("valid");
        assert_eq!(
            user.and_then(|u| u.id().map(str::to_owned)).as_deref(),
            Some("9")
        );
    }
}
