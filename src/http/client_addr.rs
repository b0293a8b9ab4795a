//! Who the client is: the socket's peer, or — only when that peer is a configured trusted proxy — the
//! address the proxies report in the one forwarding header the operator chose (`X-Forwarded-For` by
//! default, or `Forwarded`). Anyone else's forwarding headers are ignored, and so is the other header
//! even from a proxy: proxies append to the header they know and pass the other through untouched, so
//! whatever a client wrote there would be believed. Addresses are canonical (an IPv4-mapped IPv6
//! address is its IPv4 address), so a dual-stack socket sees the same client as an IPv4 one.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

use super::AppState;
use crate::config::ForwardedHeader;

/// The client's address as resolved for this request, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The proxies whose reports are believed, and where they write them.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    pub trusted: Vec<IpNet>,
    pub header: ForwardedHeader,
}

/// Middleware: resolves [`ClientAddr`] once per request.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    if let Some(peer) = peer {
        let addr = client_addr(peer, req.headers(), &state.proxies);
        req.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(req).await
}

/// The nearest address in the forwarding chain that is not a trusted proxy, starting from the peer.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, proxies: &Proxies) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| proxies.trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = match proxies.header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded_for(headers),
    };
    // Walk from the proxy nearest to us back towards the client; stop at the first stranger. A
    // malformed entry ends the walk: what lies beyond it cannot be trusted.
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The elements of a comma-separated header, across all its lines, in order.
fn list<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    list(headers, "x-forwarded-for")
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// RFC 7239 `Forwarded: for=…` entries; an element without `for` (or with an obfuscated or `unknown`
/// node) is `None`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    list(headers, "forwarded")
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or `2001:db8::1`, canonical.
fn parse_node(node: &str) -> Option<IpAddr> {
    let ip: IpAddr = if let Ok(ip) = node.parse() {
        ip
    } else if let Some(rest) = node.strip_prefix('[') {
        rest.split_once(']').and_then(|(ip, _)| ip.parse().ok())?
    } else {
        node.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())?
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::canonical_net;
    use crate::http::test_headers as headers;
    use ForwardedHeader::{Forwarded, XForwardedFor};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    struct Case {
        why: &'static str,
        peer: &'static str,
        headers: &'static [(&'static str, &'static str)],
        trusted: &'static [&'static str],
        header: ForwardedHeader,
        client: &'static str,
    }

    /// A client claiming an address in both forwarding headers.
    const CLAIMS_BOTH: &[(&str, &str)] =
        &[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")];

    #[test]
    fn the_client_is_the_nearest_address_not_a_trusted_proxy() {
        let cases = [
            Case {
                why: "an untrusted peer is the client whatever it claims (no proxies trusted)",
                peer: "203.0.113.9",
                headers: CLAIMS_BOTH,
                trusted: &[],
                header: XForwardedFor,
                client: "203.0.113.9",
            },
            Case {
                why: "an untrusted peer is the client whatever it claims (X-Forwarded-For)",
                peer: "203.0.113.9",
                headers: CLAIMS_BOTH,
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "203.0.113.9",
            },
            Case {
                why: "an untrusted peer is the client whatever it claims (Forwarded)",
                peer: "203.0.113.9",
                headers: CLAIMS_BOTH,
                trusted: &["10.0.0.0/8"],
                header: Forwarded,
                client: "203.0.113.9",
            },
            Case {
                why: "behind trusted proxies the first stranger is the client: the client put a \
                      fake address first, the proxies appended the real one",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")],
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "198.51.100.7",
            },
            Case {
                why: "several header lines are one list, in order",
                peer: "10.0.0.1",
                headers: &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
                ],
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "198.51.100.7",
            },
            Case {
                why: "only the chosen header is read: a client's own `Forwarded`, passed through \
                      by a proxy that appends to X-Forwarded-For",
                peer: "10.0.0.1",
                headers: &[
                    ("forwarded", "for=6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                trusted: &["10.0.0.1/32"],
                header: XForwardedFor,
                client: "198.51.100.7",
            },
            Case {
                why: "only the chosen header is read, the other way round",
                peer: "10.0.0.1",
                headers: &[
                    ("forwarded", "for=198.51.100.7"),
                    ("x-forwarded-for", "6.6.6.6"),
                ],
                trusted: &["10.0.0.1/32"],
                header: Forwarded,
                client: "198.51.100.7",
            },
            Case {
                why: "the chosen header missing: the proxy itself is the client, whatever the \
                      other says",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "6.6.6.6")],
                trusted: &["10.0.0.1/32"],
                header: Forwarded,
                client: "10.0.0.1",
            },
            Case {
                why: "`Forwarded` is parsed: a quoted IPv6 node with a port",
                peer: "10.0.0.1",
                headers: &[("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#)],
                trusted: &["10.0.0.1/32"],
                header: Forwarded,
                client: "2001:db8::7",
            },
            Case {
                why: "`Forwarded` is parsed: elements with other parameters",
                peer: "10.0.0.1",
                headers: &[("forwarded", "for=192.0.2.60;proto=http, for=10.0.0.1")],
                trusted: &["10.0.0.1/32"],
                header: Forwarded,
                client: "192.0.2.60",
            },
            Case {
                why: "`Forwarded` is parsed: an obfuscated node stops the walk",
                peer: "10.0.0.1",
                headers: &[("forwarded", "for=198.51.100.7, for=_hidden, for=10.0.0.1")],
                trusted: &["10.0.0.1/32"],
                header: Forwarded,
                client: "10.0.0.1",
            },
            Case {
                why: "garbage in the chain stops the walk",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.2")],
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "10.0.0.2",
            },
            Case {
                why: "no header at all: the proxy itself is the client",
                peer: "10.0.0.1",
                headers: &[],
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "10.0.0.1",
            },
            Case {
                why: "IPv4-mapped addresses are IPv4: a dual-stack socket reports an IPv4 proxy \
                      as ::ffff:10.0.0.1",
                peer: "::ffff:10.0.0.1",
                headers: &[("x-forwarded-for", "::ffff:198.51.100.7")],
                trusted: &["10.0.0.0/8"],
                header: XForwardedFor,
                client: "198.51.100.7",
            },
            Case {
                why: "a proxy configured in its IPv4-mapped form matches too",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "198.51.100.7")],
                trusted: &["::ffff:10.0.0.0/104"],
                header: XForwardedFor,
                client: "198.51.100.7",
            },
            Case {
                why: "an untrusted IPv4-mapped peer is the client as IPv4",
                peer: "::ffff:203.0.113.9",
                headers: &[("x-forwarded-for", "198.51.100.7")],
                trusted: &[],
                header: XForwardedFor,
                client: "203.0.113.9",
            },
        ];
        for case in cases {
            let proxies = Proxies {
                trusted: case
                    .trusted
                    .iter()
                    .map(|n| canonical_net(n.parse().unwrap()))
                    .collect(),
                header: case.header,
            };
            assert_eq!(
                client_addr(ip(case.peer), &headers(case.headers), &proxies),
                ip(case.client),
                "{}",
                case.why
            );
        }
    }

    #[test]
    fn ipv4_mapped_networks_are_ipv4() {
        assert_eq!(
            canonical_net("::ffff:10.0.0.1/128".parse().unwrap()),
            "10.0.0.1/32".parse::<IpNet>().unwrap()
        );
        let v6: IpNet = "2001:db8::/96".parse().unwrap();
        assert_eq!(canonical_net(v6), v6);
    }
}
