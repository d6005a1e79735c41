//! Outbound HTTP for guests (`wasi:http` 0.2 and 0.3): only towards the
//! component's `allowed_outbound_hosts`, with connect / first-byte /
//! between-bytes timeouts, a cap on the response body and on the requests
//! one invocation has in flight. Redirects are never followed here: the
//! guest gets the 3xx, and a request to where it points is checked against
//! the allow-list like any other. Every refusal or failure is counted by
//! kind.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::metrics::Metrics;

/// Network limits of one outbound request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Longest wait for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for the response head after sending the request.
    pub first_byte_timeout: Duration,
    /// Longest pause between two chunks of the response body.
    pub between_bytes_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// Most requests of one invocation in flight at once: from sending
    /// until the response body is read to its end or dropped.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            between_bytes_timeout: Duration::from_secs(10),
            max_response_bytes: 64 << 20,
            max_in_flight: 16,
        }
    }
}

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`, where scheme,
/// host (or its leftmost labels, `*.example.com`) and port may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses an `allowed_outbound_hosts` entry, `scheme://host[:port]`:
    /// the one parser both the manifest check and the runtime use, so an
    /// entry is either refused at `weir check` or enforced as written.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = entry.split_once("://") else {
            return Err(format!(
                "`{entry}` must look like `scheme://host[:port]`, e.g. `https://api.example.com`"
            ));
        };
        if !matches!(scheme, "http" | "https" | "*") {
            return Err(format!(
                "unsupported scheme `{scheme}` in `{entry}`: use `http`, `https` or `*`"
            ));
        }
        // An IPv6 address keeps its brackets, as a request's host has them.
        let (host, port) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((address, after)) => {
                let host = &rest[..address.len() + 2];
                match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if after.is_empty() => (host, None),
                    None => return Err(format!("`{entry}` must name a host and no path")),
                }
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        if host.is_empty() || host.contains('/') || host == "[]" {
            return Err(format!("`{entry}` must name a host and no path"));
        }
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        let port = match port {
            Some("*") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| format!("invalid port `{p}` in `{entry}`"))?,
            ),
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            },
        };
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = self.host == "*"
            || self.host == host
            || self
                .host
                .strip_prefix("*.")
                .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && host_ok
            && self.port.is_none_or(|p| p == port)
    }
}

/// The `wasi:http` hooks of one invocation.
pub struct OutboundHttp {
    function: Arc<str>,
    allowed: Arc<[AllowedHost]>,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for OutboundHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundHttp")
            .field("function", &self.function)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl OutboundHttp {
    /// Hooks for `function`, allowing `allowed`.
    pub fn new(
        function: Arc<str>,
        allowed: Arc<[AllowedHost]>,
        limits: HttpLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            function,
            allowed,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
            metrics,
        }
    }

    fn count_error(metrics: &Metrics, function: &str, error: &Error) {
        metrics
            .outbound_http_errors
            .with_label_values(&[function, error_kind(error)])
            .inc();
    }
}

/// The `kind` label of `weir_outbound_http_errors_total`.
pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::HttpRequestDenied => "denied",
        Error::DnsTimeout | Error::DnsError { .. } | Error::DestinationNotFound => "dns",
        Error::ConnectionRefused | Error::Connect(_) | Error::DestinationUnavailable => "connect",
        Error::ConnectionTimeout | Error::ConnectionReadTimeout | Error::HttpResponseTimeout => {
            "timeout"
        }
        Error::Tls(_)
        | Error::TlsProtocolError
        | Error::TlsCertificateError
        | Error::TlsAlertReceived { .. } => "tls",
        Error::HttpResponseBodySize(_) => "too_large",
        Error::HttpRequestUriInvalid => "bad_request",
        _ => "other",
    }
}

/// The smaller of the guest's timeout (if any) and the host's.
fn tighter(guest: Option<Duration>, host: Duration) -> Option<Duration> {
    Some(guest.map_or(host, |g| g.min(host)))
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let allowed = self.allowed.iter().any(|a| a.allows(&scheme, &host, port));
        let (function, metrics, limits) = (
            Arc::clone(&self.function),
            Arc::clone(&self.metrics),
            self.limits,
        );
        // Taken now, so a guest that starts thousands of requests at once
        // is refused past the cap before any of them costs a connection.
        let permit = Arc::clone(&self.in_flight).try_acquire_owned();
        Box::new(async move {
            if !allowed {
                tracing::warn!(%function, url = %format!("{scheme}://{host}:{port}"), "outbound request refused: host not in allowed_outbound_hosts");
                Self::count_error(&metrics, &function, &Error::HttpRequestDenied);
                return Err(Error::HttpRequestDenied);
            }
            let Ok(permit) = permit else {
                tracing::debug!(%function, max = limits.max_in_flight, "outbound request refused: too many in flight");
                metrics
                    .outbound_http_errors
                    .with_label_values(&[&*function, "too_many"])
                    .inc();
                return Err(Error::InternalError(Some(format!(
                    "more than {} outbound requests in flight (`max_outbound_requests`)",
                    limits.max_in_flight
                ))));
            };
            let options = options.unwrap_or_default();
            let options = RequestOptions {
                connect_timeout: tighter(options.connect_timeout, limits.connect_timeout),
                first_byte_timeout: tighter(options.first_byte_timeout, limits.first_byte_timeout),
                between_bytes_timeout: tighter(
                    options.between_bytes_timeout,
                    limits.between_bytes_timeout,
                ),
            };
            let (response, io) =
                match wasmtime_wasi_http::default_send_request(request, Some(options)).await {
                    Ok(sent) => sent,
                    Err(e) => {
                        Self::count_error(&metrics, &function, &e);
                        return Err(e);
                    }
                };
            let max = limits.max_response_bytes;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|len| len > max) {
                let e = Error::HttpResponseBodySize(declared);
                Self::count_error(&metrics, &function, &e);
                return Err(e);
            }
            let counted = metrics.fetch_bytes.with_label_values(&[&*function]);
            let errors = (Arc::clone(&metrics), Arc::clone(&function));
            let response = response.map(move |body| {
                // The permit lives as long as the body: a request is in
                // flight until its body is read to the end or dropped.
                let body = body.map_frame(move |frame| {
                    let _in_flight = &permit;
                    if let Some(data) = frame.data_ref() {
                        counted.inc_by(data.len() as u64);
                    }
                    frame
                });
                Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX))
                    .map_err(move |e| {
                        let e = match e.downcast::<Error>() {
                            Ok(inner) => *inner,
                            Err(_) => Error::HttpResponseBodySize(Some(max)),
                        };
                        Self::count_error(&errors.0, &errors.1, &e);
                        e
                    })
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AllowedHost;

    fn allows(entry: &str, scheme: &str, host: &str, port: u16) -> bool {
        AllowedHost::parse(entry).is_ok_and(|a| a.allows(scheme, host, port))
    }

    #[test]
    fn allow_list_matching() {
        assert!(allows("http://127.0.0.1:8717", "http", "127.0.0.1", 8717));
        assert!(!allows("http://127.0.0.1:8717", "http", "127.0.0.1", 8718));
        assert!(!allows("http://127.0.0.1:8717", "https", "127.0.0.1", 8717));
        assert!(allows(
            "https://api-public.odpt.org",
            "https",
            "api-public.odpt.org",
            443
        ));
        assert!(!allows(
            "https://api-public.odpt.org",
            "https",
            "api-public.odpt.org",
            8443
        ));
        assert!(allows(
            "https://*.example.com",
            "https",
            "a.b.example.com",
            443
        ));
        assert!(!allows(
            "https://*.example.com",
            "https",
            "example.com.evil.net",
            443
        ));
        assert!(allows("*://localhost:*", "http", "LOCALHOST", 1234));
        assert!(!allows("http://localhost:80", "http", "127.0.0.1", 80));
        assert!(allows("http://[::1]", "http", "[::1]", 80));
        assert!(allows("http://[::1]:8717", "http", "[::1]", 8717));
        assert!(!allows("http://[::1]:8717", "http", "[::2]", 8717));
    }

    #[test]
    fn entries_that_do_not_parse_say_why() {
        for ok in [
            "http://127.0.0.1:8717",
            "https://*.example.com",
            "*://api.example.com:*",
            "http://[::1]",
            "http://[::1]:8080",
        ] {
            assert!(AllowedHost::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("example.com", "must look like `scheme://host[:port]`"),
            ("ftp://example.com", "unsupported scheme `ftp`"),
            ("http://example.com:99999", "invalid port `99999`"),
            ("http://example.com/path", "no path"),
            ("http://[::1]/path", "no path"),
            ("http://", "must name a host"),
            ("http://[]", "must name a host"),
        ] {
            let error = AllowedHost::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
