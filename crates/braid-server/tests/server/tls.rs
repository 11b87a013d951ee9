//! TLS on both ports with certificates made here (rcgen): REST over HTTPS (reqwest),
//! gRPC over TLS (tonic through a rustls connector, the generated Qdrant clients),
//! plain connections refused, and client certificates required when a client CA is set.

use std::sync::Arc;

use braid_server::{Server, ServerConfig, TlsConfig};
use qdrant_client::qdrant::{self as q};
use tokio_rustls::rustls;

struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    Pki { dir, ca: ca.pem(), client_cert: client.pem(), client_key: client_key.serialize_pem() }
}

async fn serve(pki: &Pki, client_ca: bool) -> (Server, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(data.path());
    config.http = "127.0.0.1:0".parse().unwrap();
    config.grpc = "127.0.0.1:0".parse().unwrap();
    config.tls = Some(TlsConfig {
        cert: pki.dir.path().join("server.pem"),
        key: pki.dir.path().join("server.key"),
        client_ca: client_ca.then(|| pki.dir.path().join("ca.pem")),
    });
    (Server::start(config).await.unwrap(), data)
}

fn https(pki: &Pki, identity: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap());
    if identity {
        let pem = format!("{}{}", pki.client_cert, pki.client_key);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// A gRPC channel over TLS to `addr`, trusting the test CA.
async fn grpc_channel(pki: &Pki, addr: std::net::SocketAddr) -> Result<tonic::transport::Channel, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(pem_der(&pki.ca))).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test]
async fn both_ports_serve_tls_only() {
    let pki = pki();
    let (server, _data) = serve(&pki, false).await;
    let url = format!("https://localhost:{}/collections", server.http_addr().port());
    let answer = https(&pki, false).get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["collections"], serde_json::json!([]));
    // In the clear, the TLS port answers nothing a client can use.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/collections", server.http_addr().port()))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // An unknown CA: refused by the client.
    assert!(reqwest::get(&url).await.is_err());

    let channel = grpc_channel(&pki, server.grpc_addr()).await.unwrap();
    let mut health = q::qdrant_client::QdrantClient::new(channel.clone());
    let reply = health.health_check(q::HealthCheckRequest {}).await.unwrap().into_inner();
    assert!(reply.title.contains("braid"));
    let mut collections = q::collections_client::CollectionsClient::new(channel);
    assert!(
        collections.list(q::ListCollectionsRequest {}).await.unwrap().into_inner().collections.is_empty()
    );
    // The plain gRPC client cannot speak to it.
    let plain = qdrant_client::Qdrant::from_url(&format!("http://{}", server.grpc_addr()))
        .skip_compatibility_check()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(plain.list_collections().await.is_err());
}

#[tokio::test]
async fn a_client_ca_requires_client_certificates() {
    let pki = pki();
    let (server, _data) = serve(&pki, true).await;
    let url = format!("https://localhost:{}/collections", server.http_addr().port());
    assert!(https(&pki, false).get(&url).send().await.is_err(), "no client certificate");
    assert_eq!(https(&pki, true).get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn bad_tls_files_are_refused_at_start() {
    let pki = pki();
    for (cert, key) in
        [("missing.pem", "server.key"), ("server.pem", "missing.key"), ("server.key", "server.key")]
    {
        let data = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(data.path());
        config.http = "127.0.0.1:0".parse().unwrap();
        config.grpc = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(TlsConfig {
            cert: pki.dir.path().join(cert),
            key: pki.dir.path().join(key),
            client_ca: None,
        });
        let e = Server::start(config).await.unwrap_err();
        assert!(e.to_string().contains("TLS"), "{e}");
    }
}
