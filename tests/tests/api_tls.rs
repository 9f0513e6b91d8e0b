//! TLS terminated in the binary (`http.tls_cert_path`, `http.tls_key_path`): HTTPS with a
//! self-signed certificate made here, `Strict-Transport-Security` only over TLS, plain HTTP refused
//! on the TLS port, and the configuration and start-up errors that name the key to fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bootstrap::config::{Config, HttpConfig};
use bootstrap::{Application, StartError};
use tests::{Backend, TestApp, TestDatabase, test_config};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files in a folder of
/// its own (removed on drop).
struct Certificate {
    folder: PathBuf,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("a self-signed certificate");
        let folder = std::env::temp_dir().join(format!("markets-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        std::fs::write(folder.join("cert.pem"), made.cert.pem()).expect("cert.pem written");
        std::fs::write(folder.join("key.pem"), made.signing_key.serialize_pem())
            .expect("key.pem written");
        Self {
            der: made.cert.der().clone(),
            folder,
        }
    }

    fn cert(&self) -> PathBuf {
        self.folder.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.folder.join("key.pem")
    }

    /// Writes `contents` into a file of the folder and returns its path.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.folder.join(name);
        std::fs::write(&path, contents).expect("file written");
        path
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn with_tls(url: &str, cert: &Path, key: &Path) -> Config {
    let mut config = test_config(url);
    config.http.tls_cert_path = Some(cert.to_owned());
    config.http.tls_key_path = Some(key.to_owned());
    config
}

/// The real application serving HTTPS with `certificate`, on a free port; the database lives as
/// long as the returned value.
async fn spawn_tls(certificate: &Certificate) -> (u16, TestDatabase) {
    let database = TestDatabase::sqlite();
    let config = with_tls(database.url(), &certificate.cert(), &certificate.key());
    let application = Application::build(&config, true)
        .await
        .expect("the application starts with TLS");
    let port = application.port();
    tokio::spawn(application.run_until_stopped());
    (port, database)
}

/// A reply read from a raw HTTP/1.1 exchange.
struct RawReply {
    status: u16,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `GET path` over HTTPS to `127.0.0.1:port`, trusting only `certificate`, as `server_name`.
async fn https_get(
    certificate: &Certificate,
    port: u16,
    server_name: &str,
    path: &str,
) -> RawReply {
    let mut roots = RootCertStore::empty();
    roots
        .add(certificate.der.clone())
        .expect("the certificate is a trust anchor");
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    let name = ServerName::try_from(server_name.to_owned()).expect("a server name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("the TLS handshake succeeds");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("sent");
    let mut bytes = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            // A peer that closes without close_notify once the response is complete.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => panic!("reading the response: {error}"),
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let head = text.split("\r\n\r\n").next().expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    RawReply { status, headers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_hsts_and_plain_http_is_refused_on_its_port() {
    let certificate = Certificate::new();
    let (port, _database) = spawn_tls(&certificate).await;

    for server_name in ["localhost", "127.0.0.1"] {
        let live = https_get(&certificate, port, server_name, "/health/live").await;
        assert_eq!(live.status, 200, "{server_name}");
        assert_eq!(
            live.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains"),
            "{server_name}"
        );
    }
    // Errors and other routes too, with the other security headers.
    let missing = https_get(
        &certificate,
        port,
        "localhost",
        "/api/v1/markets/not-a-uuid",
    )
    .await;
    assert!(missing.status >= 400, "{}", missing.status);
    assert_eq!(
        missing.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));

    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP answered on the TLS port: {:?}",
        plain.map(|reply| reply.status())
    );
}

/// Completes a handshake with a client limited to `version`, offering h2 and http/1.1; the
/// protocol the server chose.
async fn handshake(
    certificate: &Certificate,
    port: u16,
    version: &'static tokio_rustls::rustls::SupportedProtocolVersion,
) -> Option<Vec<u8>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(certificate.der.clone())
        .expect("the certificate is a trust anchor");
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .expect("protocol version")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    let name = ServerName::try_from("localhost").expect("a server name");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|error| panic!("handshake with {version:?}: {error}"));
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_are_served_and_http_2_is_offered() {
    let certificate = Certificate::new();
    let (port, _database) = spawn_tls(&certificate).await;
    for version in [
        &tokio_rustls::rustls::version::TLS12,
        &tokio_rustls::rustls::version::TLS13,
    ] {
        assert_eq!(
            handshake(&certificate, port, version).await.as_deref(),
            Some(&b"h2"[..]),
            "{version:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_there_is_no_hsts() {
    let app = TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let reply = app.get("/health/live").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("strict-transport-security"), None);
}

#[test]
fn one_tls_file_without_the_other_is_refused_naming_the_missing_key() {
    let cert_only = Config::load_with_env(None, [("APP_HTTP__TLS_CERT_PATH", "/etc/tls/cert.pem")])
        .expect_err("a certificate without a key");
    assert_eq!(
        cert_only.key(),
        "APP_HTTP__TLS_KEY_PATH (http.tls_key_path)"
    );
    assert!(
        cert_only.to_string().contains("http.tls_cert_path"),
        "{cert_only}"
    );

    let key_only = Config::load_with_env(None, [("APP_HTTP__TLS_KEY_PATH", "/etc/tls/key.pem")])
        .expect_err("a key without a certificate");
    assert_eq!(
        key_only.key(),
        "APP_HTTP__TLS_CERT_PATH (http.tls_cert_path)"
    );

    let mut built = test_config("sqlite::memory:");
    built.http = HttpConfig {
        tls_cert_path: Some(PathBuf::from("/etc/tls/cert.pem")),
        ..HttpConfig::default()
    };
    let error = built.validate().expect_err("validated too");
    assert_eq!(error.key(), "APP_HTTP__TLS_KEY_PATH (http.tls_key_path)");
}

/// Builds with TLS files `cert` and `key`, which must fail; the error as text.
async fn start_error(cert: &Path, key: &Path) -> String {
    let database = TestDatabase::sqlite();
    let config = with_tls(database.url(), cert, key);
    let Err(error) = Application::build(&config, true).await else {
        panic!(
            "started with cert {} and key {}",
            cert.display(),
            key.display()
        );
    };
    assert!(matches!(error, StartError::Tls { .. }), "{error:?}");
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_invalid_tls_files_stop_the_start_naming_the_key() {
    let certificate = Certificate::new();
    let absent = certificate.folder.join("absent.pem");

    let missing_cert = start_error(&absent, &certificate.key()).await;
    assert!(
        missing_cert.contains("http.tls_cert_path")
            && missing_cert.contains("absent.pem")
            && missing_cert.contains("cannot read"),
        "{missing_cert}"
    );

    let missing_key = start_error(&certificate.cert(), &absent).await;
    assert!(
        missing_key.contains("http.tls_key_path") && missing_key.contains("cannot read"),
        "{missing_key}"
    );

    let not_pem = certificate.file("garbage.pem", "this is not PEM\n");
    let no_certificate = start_error(&not_pem, &certificate.key()).await;
    assert!(
        no_certificate.contains("http.tls_cert_path") && no_certificate.contains("no certificate"),
        "{no_certificate}"
    );
    let no_key = start_error(&certificate.cert(), &not_pem).await;
    assert!(
        no_key.contains("http.tls_key_path") && no_key.contains("no private key"),
        "{no_key}"
    );

    // A key that is not the certificate's.
    let other = Certificate::new();
    let mismatched = start_error(&certificate.cert(), &other.key()).await;
    assert!(mismatched.contains("http.tls_key_path"), "{mismatched}");
}
