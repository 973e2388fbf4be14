//! The client's address, for rate limits and logs.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The client's address: the peer's, or — when `trusted_hops` proxies that append
/// to `X-Forwarded-For` stand in front — the address the outermost of them saw,
/// counted from the right. Entries to the left of that were written by the client
/// and prove nothing. A header with fewer entries than hops did not pass through
/// every proxy, and the peer's address is used.
pub fn client_ip(req: &HttpRequest, trusted_hops: usize) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if trusted_hops == 0 {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        hops.extend(text.split(',').map(str::trim));
    }
    hops.len()
        .checked_sub(trusted_hops)
        .and_then(|i| hops.get(i))
        .and_then(|hop| hop.parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn with_forwarded(values: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr("127.0.0.9:4000".parse().unwrap());
        for v in values {
            req = req.append_header(("x-forwarded-for", *v));
        }
        req.to_http_request()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(
            client_ip(&with_forwarded(&["198.51.100.7"]), 0),
            IpAddr::from([127, 0, 0, 9])
        );
    }

    #[test]
    fn one_proxy_takes_the_right_most_hop_not_the_client_written_one() {
        let req = with_forwarded(&["6.6.6.6, 203.0.113.5"]);
        assert_eq!(client_ip(&req, 1), IpAddr::from([203, 0, 113, 5]));
    }

    #[test]
    fn two_proxies_count_from_the_right_across_headers() {
        let req = with_forwarded(&["6.6.6.6, 203.0.113.5", "10.0.0.2"]);
        assert_eq!(client_ip(&req, 2), IpAddr::from([203, 0, 113, 5]));
    }

    #[test]
    fn too_few_hops_or_garbage_fall_back_to_the_peer() {
        assert_eq!(
            client_ip(&with_forwarded(&["203.0.113.5"]), 2),
            IpAddr::from([127, 0, 0, 9])
        );
        assert_eq!(
            client_ip(&with_forwarded(&["not-an-ip"]), 1),
            IpAddr::from([127, 0, 0, 9])
        );
        assert_eq!(client_ip(&with_forwarded(&[]), 1), IpAddr::from([127, 0, 0, 9]));
    }
}
