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

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// RFC 7239 `Forwarded: for=…` entries; an element without `for` (or with an obfuscated or `unknown`
/// node) is `None`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(nets: &[&str], header: ForwardedHeader) -> Proxies {
        Proxies {
            trusted: nets
                .iter()
                .map(|n| canonical_net(n.parse().unwrap()))
                .collect(),
            header,
        }
    }

    fn xff(nets: &[&str]) -> Proxies {
        proxies(nets, ForwardedHeader::XForwardedFor)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            client_addr(ip("203.0.113.9"), &h, &xff(&[])),
            ip("203.0.113.9")
        );
        for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
            let p = proxies(&["10.0.0.0/8"], header);
            assert_eq!(client_addr(ip("203.0.113.9"), &h, &p), ip("203.0.113.9"));
        }
    }

    #[test]
    fn behind_trusted_proxies_the_first_stranger_is_the_client() {
        // The client put a fake address first; the proxies appended the real one.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &xff(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
        ]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &xff(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn only_the_chosen_header_is_read() {
        // A client's own `Forwarded`, passed through by a proxy that appends to X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &xff(&["10.0.0.1/32"])),
            ip("198.51.100.7")
        );
        // And the other way round.
        let h = headers(&[
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        let p = proxies(&["10.0.0.1/32"], ForwardedHeader::Forwarded);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &p), ip("198.51.100.7"));
        // The chosen header missing: the proxy itself is the client, whatever the other says.
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &p), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_parsed() {
        let p = proxies(&["10.0.0.1/32"], ForwardedHeader::Forwarded);
        let h = headers(&[("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#)]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &p), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=10.0.0.1")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &p), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=198.51.100.7, for=_hidden, for=10.0.0.1")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &p), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk() {
        let trusted = xff(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.2")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.2"));
        let none = headers(&[]);
        assert_eq!(client_addr(ip("10.0.0.1"), &none, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        // A dual-stack socket reports an IPv4 proxy as ::ffff:10.0.0.1.
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.7")]);
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.1"), &h, &xff(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
        // A proxy configured in its mapped form matches too.
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &xff(&["::ffff:10.0.0.0/104"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("::ffff:203.0.113.9"), &h, &xff(&[])),
            ip("203.0.113.9")
        );
        assert_eq!(
            canonical_net("::ffff:10.0.0.1/128".parse().unwrap()),
            "10.0.0.1/32".parse::<IpNet>().unwrap()
        );
        let v6: IpNet = "2001:db8::/96".parse().unwrap();
        assert_eq!(canonical_net(v6), v6);
    }
}
