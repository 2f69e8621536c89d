//! TLS at both ends, with certificates made at test time (rcgen): the hubs server
//! terminates TLS itself (`ServeOptions::tls_pem`), the Rust client reaches it over every
//! transport × protocol (`https://`, `wss://`, trusting the test CA), presents a client
//! certificate to a server that asks for one, and the official JavaScript client (Node,
//! with the test CA) connects over every transport.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hubs::TransportKind;
use hubs::connection::{ClientStream, HubConnection, StartError, TlsConfig};
use hubs_tests::{COMBINATIONS, within};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;

/// A test CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all in PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hubs test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("key");
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "hubs test client");
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .expect("client certificate");
    Pki {
        ca: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn interop_settings() -> hubs_examples::interop::Settings {
    hubs_examples::interop::Settings {
        keep_alive: Duration::from_secs(1),
        long_poll_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// The interop application over TLS on a free port.
async fn tls_interop_server(options: hubs::ServeOptions) -> SocketAddr {
    let app = hubs_examples::interop::app(&interop_settings()).expect("builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(hubs::serve(listener, app, options));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_over_tls_on_every_transport_and_protocol() {
    let pki = pki();
    let options = hubs::ServeOptions::default()
        .tls_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes())
        .expect("the server certificate");
    let addr = tls_interop_server(options).await;
    let tls = TlsConfig::new()
        .add_root_certificates_pem(pki.ca.as_bytes())
        .expect("the test CA");
    for (transport, protocol) in COMBINATIONS {
        let what = format!("{} + {protocol}", transport.name());
        let connection = HubConnection::builder(format!("https://{addr}/testhub"))
            .transports([transport])
            .protocol(protocol)
            .tls(tls.clone())
            .build();
        within(&what, connection.start())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let echoed: Option<String> = within(&what, connection.invoke("Echo", ("sealed",)))
            .await
            .expect("echo");
        assert_eq!(echoed.as_deref(), Some("sealed"), "{what}");
        let name: String = within(&what, connection.invoke("GetActiveTransportName", ()))
            .await
            .expect("name");
        assert_eq!(name, transport.name());
        let stream: ClientStream<String> = within(&what, connection.stream("Stream", ()))
            .await
            .expect("stream");
        let items: Vec<String> = within(&what, stream.map(|i| i.expect("item")).collect()).await;
        assert_eq!(items, ["a", "b", "c"], "{what}");
        within(&what, connection.stop()).await;
    }

    // `wss://` names the same server.
    let connection = HubConnection::builder(format!("wss://{addr}/testhub"))
        .skip_negotiation()
        .tls(tls)
        .build();
    within("wss", connection.start())
        .await
        .expect("wss:// starts");
    connection.stop().await;

    // Without the test CA, the server's certificate is not trusted.
    let untrusted = HubConnection::builder(format!("https://{addr}/testhub")).build();
    let error = within("untrusted", untrusted.start())
        .await
        .expect_err("an unknown issuer is refused");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "the error says why: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // rustls 0.23.48 deprecates ring's provider; the workspace keeps ring.
async fn a_client_certificate_opens_a_server_that_asks_for_one() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let pki = pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).expect("CA"))
        .expect("trusted");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).expect("key"),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let addr = tls_interop_server(hubs::ServeOptions::default().tls(Arc::new(config))).await;

    let trusted = TlsConfig::new()
        .without_webpki_roots()
        .add_root_certificates_pem(pki.ca.as_bytes())
        .expect("CA");
    let with_certificate = trusted
        .clone()
        .client_certificate_pem(pki.client_cert.as_bytes(), pki.client_key.as_bytes())
        .expect("client certificate");
    for transport in [TransportKind::WebSockets, TransportKind::LongPolling] {
        let connection = HubConnection::builder(format!("https://{addr}/testhub"))
            .transports([transport])
            .tls(with_certificate.clone())
            .build();
        within("mutual TLS", connection.start())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", transport.name()));
        let echoed: Option<String> = within("echo", connection.invoke("Echo", ("mutual",)))
            .await
            .expect("echo");
        assert_eq!(echoed.as_deref(), Some("mutual"));
        connection.stop().await;
    }
    let anonymous = HubConnection::builder(format!("https://{addr}/testhub"))
        .tls(trusted)
        .build();
    let refused = within("no certificate", anonymous.start()).await;
    assert!(
        matches!(refused, Err(StartError::Negotiate(_))),
        "a client without a certificate is refused: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_javascript_client_over_tls() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    assert!(
        dir.join("node_modules/@microsoft/signalr").is_dir(),
        "the official client is not installed: run `bash scripts/test` (it runs `npm ci` in tests/interop)"
    );
    let pki = pki();
    let ca_file = std::env::temp_dir().join(format!("hubs-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &pki.ca).expect("writes the CA");
    let options = hubs::ServeOptions::default()
        .tls_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes())
        .expect("the server certificate");
    let addr = tls_interop_server(options).await;
    let mut command = tokio::process::Command::new("node");
    command
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg("js-tls/")
        .current_dir(&dir)
        .env("HUBS_URL", format!("https://{addr}"))
        .env("NODE_EXTRA_CA_CERTS", &ca_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("starts node");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("node finishes in 60 s")
        .expect("waits");
    let _ = std::fs::remove_file(&ca_file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "node over TLS failed:\n{stdout}\n{stderr}"
    );
}
