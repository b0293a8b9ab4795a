//! The transport's settings, declared once: where to listen, the connection limits `serve` enforces,
//! and what `http` needs to know about its callers (trusted proxies, allowed origins, deadline, the
//! access log). Declared here rather than in `serve` or `http` because configuration sits below them:
//! they read these types, never the other way round.

use std::net::SocketAddr;
use std::time::Duration;

use crate::settings::{Checked, Dur, Invalid, List, at_least_one, networks, section};

section! {
    /// The transport section.
    pub struct TransportSection {
        /// Address to listen on.
        bind: String = "127.0.0.1:8080".into(); Serve, "`127.0.0.1:8080`";
        /// Reverse proxies whose forwarding headers are believed: addresses or CIDRs,
        /// comma-separated.
        trusted_proxies: List = List::default(); Serve, "none";
        /// Which header trusted proxies report the client in: x-forwarded-for or forwarded.
        forwarded_header: ForwardedHeader = ForwardedHeader::XForwardedFor; Serve, "`x-forwarded-for`";
        /// Browser origins allowed to call the API (CORS), comma-separated.
        cors_origins: List = List::default(); Serve, "none";
        /// Longest a request may take.
        request_timeout: Dur = Dur::secs(30); Serve, "`30s`";
        /// Log one line per request at info.
        access_log: bool = false; Serve, "`false`";
        /// Connections served at once; more wait to be accepted.
        max_connections: usize = ConnectionLimits::default().max_connections; Serve, "`10000`";
        /// Largest request line plus headers, in bytes (at least 8192); more is 431.
        max_header_bytes: usize = ConnectionLimits::default().max_header_bytes; Serve, "`16384`";
        /// Longest a client may take to send a request's headers.
        header_read_timeout: Dur = Dur(ConnectionLimits::default().header_read_timeout); Serve, "`10s`";
        /// Longest a connection may stay open with no request after its last one.
        idle_timeout: Dur = Dur(ConnectionLimits::default().idle_timeout); Serve, "`60s`";
        /// Streams one HTTP/2 connection may have open at once.
        http2_max_streams: u32 = ConnectionLimits::default().http2_max_streams; Serve, "`100`";
    }
}

/// What the transport section gives `serve` and `http`.
#[derive(Clone)]
pub struct TransportSettings {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one forwarding header trusted proxies are believed in; the other is ignored.
    pub forwarded_header: ForwardedHeader,
    /// Origins allowed to call the API from a browser (CORS); empty means none.
    pub cors_origins: Vec<String>,
    /// Longest time a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// One `info` log line per request (method, path, status, latency). Off by default: a reverse
    /// proxy usually keeps access logs, and the line costs about a tenth of a cached token check.
    pub access_log: bool,
    /// Connections at once, header size and header deadline.
    pub connections: ConnectionLimits,
}

impl TransportSection {
    pub fn validate(self) -> Checked<TransportSettings> {
        let bind = self.bind.parse().map_err(|_| {
            Invalid::new(
                "bind",
                format!("'{}' is not an address like 127.0.0.1:8080", self.bind),
            )
        })?;
        for origin in &self.cors_origins.0 {
            let exact = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.origin().ascii_serialization() == origin.trim_end_matches('/')
            });
            if !exact {
                return Err(Invalid::new(
                    "cors_origins",
                    format!("'{origin}' must be an origin like https://app.example.com"),
                ));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(Invalid::new(
                "max_header_bytes",
                format!("must be at least {MIN_HEADER_BYTES}"),
            ));
        }
        Ok(TransportSettings {
            bind,
            trusted_proxies: networks("trusted_proxies", &self.trusted_proxies)?,
            forwarded_header: self.forwarded_header,
            cors_origins: self
                .cors_origins
                .0
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
            request_timeout: self.request_timeout.positive("request_timeout")?,
            access_log: self.access_log,
            connections: ConnectionLimits {
                max_connections: at_least_one("max_connections", self.max_connections, "")?,
                max_header_bytes: self.max_header_bytes,
                header_read_timeout: self.header_read_timeout.positive("header_read_timeout")?,
                idle_timeout: self.idle_timeout.positive("idle_timeout")?,
                http2_max_streams: at_least_one("http2_max_streams", self.http2_max_streams, "")?,
            },
        })
    }
}

/// Connection-level limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// The most bytes of request line and headers one request may send. hyper's own floor is 8 KiB.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's headers. Also the deadline for a new
    /// connection's first request (protocol detection included), and the time a closing connection
    /// gets to say goodbye before it is dropped.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight after its last one.
    pub idle_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            // Node's (and so Strapi's) default.
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            // What RFC 9113 recommends as the least a server should allow, and nginx's default.
            http2_max_streams: 100,
        }
    }
}

/// hyper refuses a read buffer under 8 KiB; smaller configured caps are raised to it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The header trusted proxies report the client in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, what nginx, HAProxy and the cloud load balancers append to.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}
