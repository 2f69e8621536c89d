//! TLS for `https://` and `wss://`: rustls with the ring provider, the webpki roots by
//! default, custom roots and a client certificate when asked.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// A TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(String);

/// Which servers a client trusts, and the certificate it presents.
///
/// ```
/// use hubs_client::{HubConnection, TlsConfig};
///
/// # fn f(ca_pem: &[u8]) -> Result<(), hubs_client::TlsConfigError> {
/// // Trust a private CA as well as the public roots.
/// let tls = TlsConfig::new().add_root_certificates_pem(ca_pem)?;
/// let connection = HubConnection::builder("https://internal.example/chat").tls(tls).build();
/// # let _ = connection; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsConfig {
    webpki_roots: bool,
    roots: Vec<CertificateDer<'static>>,
    identity: Option<Identity>,
    custom: Option<Arc<ClientConfig>>,
}

#[derive(Debug)]
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// rustls with *ring* (no C toolchain beyond cc, no aws-lc build). rustls 0.23.48
/// deprecates it for lacking post-quantum key exchange; the choice stands until the
/// workspace moves to aws-lc-rs.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Trusts the webpki roots (Mozilla's), presents no certificate.
    pub fn new() -> Self {
        Self {
            webpki_roots: true,
            roots: Vec::new(),
            identity: None,
            custom: None,
        }
    }

    /// Trusts only the roots added with the `add_root_*` methods (not the webpki ones).
    #[must_use]
    pub fn without_webpki_roots(mut self) -> Self {
        self.webpki_roots = false;
        self
    }

    /// Also trusts the certificates in `pem` (one or more `CERTIFICATE` blocks).
    ///
    /// # Errors
    ///
    /// When `pem` holds no certificate or cannot be read.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, TlsConfigError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsConfigError(format!("cannot read the root certificates: {e}")))?;
        if certificates.is_empty() {
            return Err(TlsConfigError("no certificate in the PEM text".to_owned()));
        }
        self.roots.extend(certificates);
        Ok(self)
    }

    /// Also trusts the DER-encoded certificate `der`.
    #[must_use]
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Presents a client certificate (mutual TLS): its chain and private key, in PEM.
    ///
    /// # Errors
    ///
    /// When either cannot be read, or the key does not match the certificate.
    pub fn client_certificate_pem(
        mut self,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsConfigError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsConfigError(format!("cannot read the client certificate: {e}")))?;
        if chain.is_empty() {
            return Err(TlsConfigError(
                "no client certificate in the PEM text".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsConfigError(format!("cannot read the client key: {e}")))?;
        self.identity = Some(Identity { chain, key });
        // Checked now, so that a mismatch is an error here rather than at `start`.
        self.client_config()?;
        Ok(self)
    }

    /// Uses `config` as it is (its roots, client certificate, ALPN and verifier).
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self {
            custom: Some(config),
            ..Self::new()
        }
    }

    /// The rustls configuration for HTTP/1.1 connections.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        if let Some(custom) = &self.custom {
            return Ok(custom.clone());
        }
        let mut roots = RootCertStore::empty();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for root in &self.roots {
            roots
                .add(root.clone())
                .map_err(|e| TlsConfigError(format!("cannot trust a root certificate: {e}")))?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| TlsConfigError(format!("cannot use the client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A configuration trusting the webpki roots, for a connector whose own configuration was
/// refused (requests to `https` URLs are refused before they reach it).
pub(crate) fn fallback_config() -> ClientConfig {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    #[allow(clippy::expect_used)] // ring supports rustls's default protocol versions
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
