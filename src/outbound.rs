//! The one HTTP client Keyway uses to call other servers: the breached-password range API and the
//! single sign-on providers (discovery, JWKS, token and user endpoints). Built on hyper's connection
//! API and tokio-rustls (ring, Mozilla's roots), both already in the build, so no second HTTP stack
//! comes along.
//!
//! Deliberately small: one request per connection, a deadline on the whole exchange, a cap on the
//! answer's size, and redirects are never followed (a redirect to an internal address is how an
//! outbound client becomes a server-side request forgery).

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::http::{Request, Response, header};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// Why an outbound request failed. The text is for the log only: it names hosts, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("bad URL: {0}")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    /// A client whose requests take at most `timeout` (connection included) and read at most
    /// `max_body` bytes of answer.
    pub fn new(timeout: Duration, max_body: usize) -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            // ring supports the default protocol versions; this cannot fail.
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
        Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            max_body,
        }
    }

    /// Sends `request` (an absolute URL) and reads the whole answer, whatever its status.
    pub async fn send(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, OutboundError> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| OutboundError::Timeout(self.timeout))?
    }

    async fn exchange(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, OutboundError> {
        let url = url::Url::parse(&request.uri().to_string())
            .map_err(|e| OutboundError::Url(e.to_string()))?;
        let host = url
            .host()
            .ok_or_else(|| OutboundError::Url("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| OutboundError::Url("no port".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let (mut parts, body) = request.into_parts();
        // On the wire the request line carries the path only; the host goes in its header.
        parts.uri = url[url::Position::BeforePath..url::Position::AfterQuery]
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| OutboundError::Url(e.to_string()))?;
        let headers = &mut parts.headers;
        headers.insert(
            header::HOST,
            authority
                .parse()
                .map_err(|_| OutboundError::Url("bad host".into()))?,
        );
        headers
            .entry(header::USER_AGENT)
            .or_insert(header::HeaderValue::from_static(concat!(
                "keyway/",
                env!("CARGO_PKG_VERSION")
            )));
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let tcp = match &host {
            url::Host::Domain(d) => tokio::net::TcpStream::connect((*d, port)).await?,
            url::Host::Ipv4(ip) => tokio::net::TcpStream::connect((*ip, port)).await?,
            url::Host::Ipv6(ip) => tokio::net::TcpStream::connect((*ip, port)).await?,
        };
        match url.scheme() {
            "https" => {
                let name = match host {
                    url::Host::Domain(d) => ServerName::try_from(d.to_owned())
                        .map_err(|e| OutboundError::Url(e.to_string()))?,
                    url::Host::Ipv4(ip) => ServerName::from(std::net::IpAddr::from(ip)),
                    url::Host::Ipv6(ip) => ServerName::from(std::net::IpAddr::from(ip)),
                };
                let tls = self.tls.connect(name, tcp).await?;
                self.over(tls, request).await
            }
            "http" => self.over(tcp, request).await,
            other => Err(OutboundError::Url(format!(
                "scheme {other} is not http or https"
            ))),
        }
    }

    async fn over(
        &self,
        io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Vec<u8>>, OutboundError> {
        let http = |e: hyper::Error| OutboundError::Http(e.to_string());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(http)?;
        let driver = tokio::spawn(connection);
        let result = async {
            let response = sender.send_request(request).await.map_err(http)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        OutboundError::TooLarge(self.max_body)
                    } else {
                        OutboundError::Http(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body.to_vec()))
        }
        .await;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server that records the request head and answers `answer`.
    async fn one_shot(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn sends_origin_form_with_host_and_reads_the_answer() {
        let (url, seen) =
            one_shot("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        let client = HttpClient::new(Duration::from_secs(5), 1024);
        let request = Request::post(format!("{url}/token?x=1"))
            .body(b"a=b".to_vec())
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body(), b"hello");
        let head = seen.await.unwrap();
        assert!(head.starts_with("POST /token?x=1 HTTP/1.1\r\n"), "{head}");
        let authority = url.trim_start_matches("http://");
        assert!(
            head.to_lowercase().contains(&format!("host: {authority}")),
            "{head}"
        );
        assert!(head.contains("keyway/"), "{head}");
    }

    #[tokio::test]
    async fn refuses_oversized_answers_and_does_not_follow_redirects() {
        let (url, _) =
            one_shot("HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n01234567890123456789").await;
        let client = HttpClient::new(Duration::from_secs(5), 10);
        let err = client
            .send(Request::get(&url).body(Vec::new()).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::TooLarge(10)), "{err}");

        let (url, _) = one_shot(
            "HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let response = HttpClient::new(Duration::from_secs(5), 10)
            .send(Request::get(&url).body(Vec::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            302,
            "the redirect is handed back, not followed"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let err = HttpClient::new(Duration::from_millis(200), 10)
            .send(Request::get(&url).body(Vec::new()).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Timeout(_)), "{err}");
    }
}
