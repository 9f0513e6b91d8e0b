//! Rate limiting of `/api/v1`: the policy that applies to a request, the client's address behind trusted proxies, and the `RateLimit-*` headers.
//!
//! One policy per request, the first that applies:
//!
//! | requests | key | quota (`[rate_limit]`) |
//! |---|---|---|
//! | `POST /api/v1/auth/login` | client IP | `sign_in_per_minute` |
//! | `POST /api/v1/auth/register` | client IP | `register_per_hour` |
//! | `POST /api/v1/markets/{id}/image` | client IP | `uploads_per_hour` |
//! | any other, with a valid bearer token | user id | `user_per_minute` |
//! | any other | client IP | `anonymous_per_minute` |
//!
//! Every response of a limited route carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (whole seconds until the key has its whole limit again, rounded up); a refusal
//! is 429 `rate_limited` with `Retry-After` (whole seconds, rounded up). When the limiter cannot
//! decide (only possible without an in-process fallback) the request goes through unlimited and a
//! warning is logged: a limiter outage must not become an API outage (fail open, ADR 0013).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use domain::ports::{Quota, RateDecision, RateLimiter};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::bearer_token;

/// `RateLimit-Limit`: the quota's limit.
pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests still allowed at once.
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the whole limit is available again.
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The quota of each policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicies {
    /// Requests without a valid token, per client IP.
    pub anonymous: Quota,
    /// Requests with a valid token, per user.
    pub user: Quota,
    /// `POST /api/v1/auth/login`, per client IP.
    pub sign_in: Quota,
    /// `POST /api/v1/auth/register`, per client IP.
    pub register: Quota,
    /// `POST /api/v1/markets/{id}/image`, per client IP.
    pub uploads: Quota,
}

/// What the middleware needs: the limiter, the policies and who may speak for a client.
pub struct RateLimits {
    pub limiter: Arc<dyn RateLimiter>,
    pub policies: RatePolicies,
    pub trusted_proxies: TrustedProxies,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("policies", &self.policies)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The key and quota that apply to `request`, coming from `client`.
    fn policy(
        &self,
        request: &ServiceRequest,
        client: IpAddr,
        state: &AppState,
    ) -> (String, Quota) {
        let policies = &self.policies;
        let path = request.path();
        if request.method() == Method::POST {
            let group = match path {
                "/api/v1/auth/login" => Some(("sign_in", policies.sign_in)),
                "/api/v1/auth/register" => Some(("register", policies.register)),
                _ if is_upload(path) => Some(("upload", policies.uploads)),
                _ => None,
            };
            if let Some((group, quota)) = group {
                return (format!("{group}:{client}"), quota);
            }
        }
        // The token's signature is enough to pick the quota (the session is checked later, by the
        // handler's extractor). Cookie sessions count per client IP.
        match bearer_token(request.request())
            .ok()
            .flatten()
            .map(|token| state.use_cases.deps().tokens.verify(token))
        {
            Some(Ok(claims)) => (format!("user:{}", claims.actor.user_id), policies.user),
            // No token, or one that does not authenticate: anonymous.
            _ => (format!("ip:{client}"), policies.anonymous),
        }
    }
}

/// `/api/v1/markets/{id}/image`.
fn is_upload(path: &str) -> bool {
    path.strip_prefix("/api/v1/markets/")
        .and_then(|rest| rest.strip_suffix("/image"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// An IP address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpBlock {
    address: IpAddr,
    prefix: u8,
}

impl IpBlock {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().ok()?;
        let address = address.to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|p| *p <= bits)?,
            None => bits,
        };
        Some(Self { address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => same_prefix(
                u128::from(block.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(block), IpAddr::V6(ip)) => {
                same_prefix(block.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    a & mask == b & mask
}

/// A trusted proxy list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or a CIDR block (such as 10.0.0.0/8)")]
pub struct InvalidProxy(pub String);

/// The proxies whose `X-Forwarded-For` is believed: IP addresses and CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpBlock>);

impl TrustedProxies {
    /// A comma-separated list (`10.0.0.0/8, 192.168.1.7, ::1`); empty trusts no one.
    ///
    /// # Errors
    /// [`InvalidProxy`] naming the first entry that is not an address or a block.
    pub fn parse(list: &str) -> Result<Self, InvalidProxy> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| IpBlock::parse(entry).ok_or_else(|| InvalidProxy(entry.to_owned())))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of them.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the right-most
    /// address of `X-Forwarded-For` (all its values, in order) that is not a trusted proxy. A
    /// malformed entry stops the walk: the hop that reported it is taken as the client.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Ok(address) = hop.parse::<IpAddr>() else {
                break;
            };
            client = address.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// Whole seconds, rounded up.
fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The `RateLimit-*` headers of a decision.
fn headers_of(decision: &RateDecision) -> [(HeaderName, HeaderValue); 3] {
    [
        (RATELIMIT_LIMIT.clone(), HeaderValue::from(decision.limit)),
        (
            RATELIMIT_REMAINING.clone(),
            HeaderValue::from(decision.remaining),
        ),
        (
            RATELIMIT_RESET.clone(),
            HeaderValue::from(seconds_up(decision.reset_after)),
        ),
    ]
}

/// The middleware function, on the `/api/v1` scope; register with
/// `actix_web::middleware::from_fn(rate_limit)`. Does nothing unless [`AppState::rate_limits`] is
/// set.
///
/// # Errors
/// Passes on errors of the inner service that are not responses.
pub async fn rate_limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let Some(limits) = state.rate_limits.as_ref() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let client = request
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |peer| {
            limits
                .trusted_proxies
                .client_ip(peer.ip(), request.headers())
        });
    let (key, quota) = limits.policy(&request, client, &state);
    let decision = match limits.limiter.check(&key, quota).await {
        Ok(decision) => decision,
        Err(error) => {
            tracing::warn!(%error, "the rate limiter cannot decide; the request goes through unlimited");
            return Ok(next.call(request).await?.map_into_boxed_body());
        }
    };
    if !decision.allowed {
        let retry_after = decision.retry_after.map_or(1, seconds_up).max(1);
        state.metrics.observe_rejection("rate_limited");
        // Debug only: under a flood every refusal is already in the request log line (429).
        tracing::debug!(
            policy = key.split(':').next().unwrap_or_default(),
            retry_after,
            "rate limited"
        );
        return Ok(
            request.error_response(ApiError::rate_limited(retry_after, headers_of(&decision)))
        );
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    for (name, value) in headers_of(&decision) {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        headers
    }

    #[test]
    fn proxies_are_addresses_and_blocks() {
        let proxies =
            TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,::1, fd00::/8").expect("valid");
        assert!(proxies.contains(ip("10.200.3.4")));
        assert!(proxies.contains(ip("192.168.1.7")));
        assert!(!proxies.contains(ip("192.168.1.8")));
        assert!(proxies.contains(ip("::1")));
        assert!(proxies.contains(ip("fd12::1")));
        assert!(
            proxies.contains(ip("::ffff:10.1.2.3")),
            "IPv4 mapped in IPv6"
        );
        assert!(!proxies.contains(ip("11.0.0.1")));
        assert_eq!(
            TrustedProxies::parse("").expect("empty"),
            TrustedProxies::default()
        );
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.1/x", "::1/129"] {
            assert_eq!(
                TrustedProxies::parse(bad),
                Err(InvalidProxy(bad.to_owned()))
            );
        }
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_peer() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").expect("valid");
        let headers = forwarded(&["203.0.113.9, 10.0.0.2", "10.0.0.3"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), &headers),
            ip("198.51.100.1"),
            "an untrusted peer speaks for itself"
        );
        let spoofed = forwarded(&["1.1.1.1, 203.0.113.9"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &spoofed),
            ip("203.0.113.9"),
            "the right-most untrusted address, not what the client wrote before it"
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &forwarded(&["garbage, 10.0.0.5"])),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn upload_paths_are_recognised() {
        assert!(is_upload("/api/v1/markets/0193/image"));
        assert!(!is_upload("/api/v1/markets//image"));
        assert!(!is_upload("/api/v1/markets/a/b/image"));
        assert!(!is_upload("/api/v1/markets/a/thumbnail"));
    }

    #[test]
    fn seconds_are_rounded_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(6)), 6);
        assert_eq!(seconds_up(Duration::from_millis(6_001)), 7);
    }
}
