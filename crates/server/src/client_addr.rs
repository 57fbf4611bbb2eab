//! The client's address, once per request. Behind a reverse proxy every connection comes
//! from the proxy, which would make per-IP rate limits one shared bucket and show the
//! proxy's address (and place) on the phone. An operator lists the proxies it runs
//! (`trusted_proxies`); for a connection from one of them the client is the rightmost
//! `X-Forwarded-For` entry that is not a trusted proxy. A connection from anywhere else
//! keeps its own address, so nobody can claim another address by sending the header.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and networks (`10.0.0.0/8`); the error names the
    /// entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|raw| {
                let s = raw.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies entry {s:?} is not an IP address or CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a connection from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let mut client = canonical(peer);
        // Every X-Forwarded-For header, in order, is one comma-separated list.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // A hop we cannot read ends the walk: what lies left of it is unverifiable.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

/// IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client is counted under by rate limits and stream caps. One IPv6 subscriber
/// usually holds a whole /64 (and can pick any address in it), so IPv6 clients count by
/// their /64. A request whose address is unknown (a router embedded without
/// `ConnectInfo`) counts under one shared key: limits fail closed, never open.
pub fn rate_key(ip: Option<IpAddr>) -> IpAddr {
    match ip.map(canonical) {
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        Some(v4) => v4,
        None => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// The resolved client address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

static WARNED_NO_PEER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Middleware: resolves [`ClientAddr`] before any handler runs.
pub async fn resolve(
    axum::extract::State(proxies): axum::extract::State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    if peer.is_none() && !WARNED_NO_PEER.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "requests carry no peer address (serve the router with `into_make_service_with_connect_info::<SocketAddr>()`): \
             every client shares one rate-limit bucket"
        );
    }
    let client = peer.map(|p| proxies.client(p, request.headers()));
    request.extensions_mut().insert(ClientAddr(client));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_an_address() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(proxies.client(ip("203.0.113.9"), &headers(&["198.51.100.1"])), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(ip("127.0.0.1"), &headers(&["198.51.100.1"])), ip("127.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        // The client's own spoofed entry sits left of its real address.
        let h = headers(&["6.6.6.6, 198.51.100.1", "10.1.2.3"]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &h), ip("198.51.100.1"));
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers(&["[2001:db8::5]:443"])), ip("2001:db8::5"));
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers(&["81.2.69.160:51234"])), ip("81.2.69.160"));
        // Only proxies in the header: the leftmost one is as far as we can see.
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers(&["10.9.9.9"])), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(proxies.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last readable hop.
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers(&["1.2.3.4, nonsense, 10.2.2.2"])), ip("10.2.2.2"));
        // IPv4-mapped IPv6 peers match IPv4 networks.
        assert_eq!(proxies.client(ip("::ffff:10.0.0.1"), &headers(&["198.51.100.7"])), ip("198.51.100.7"));
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_unknown_ones_share_a_key() {
        assert_eq!(rate_key(Some(ip("2001:db8:1:2:aaaa::1"))), ip("2001:db8:1:2::"));
        assert_eq!(rate_key(Some(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))), ip("2001:db8:1:2::"));
        assert_ne!(rate_key(Some(ip("2001:db8:1:3::1"))), rate_key(Some(ip("2001:db8:1:2::1"))));
        assert_eq!(rate_key(Some(ip("198.51.100.7"))), ip("198.51.100.7"));
        assert_eq!(rate_key(Some(ip("::ffff:198.51.100.7"))), ip("198.51.100.7"));
        assert_eq!(rate_key(None), rate_key(None));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.internal".into()]).unwrap_err();
        assert!(err.contains("\"proxy.internal\""), "{err}");
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }
}
