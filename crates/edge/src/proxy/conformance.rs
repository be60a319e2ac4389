//! What a request must be before it is forwarded (RFC 9110 and RFC 9112): requests a proxy
//! and its origin could read two ways are refused with 400, never passed on.
//!
//! hyper parses the message; this checks what hyper leaves to the application: the number
//! of `Host` fields, `Host` on HTTP/1.1, the method's length, and the authority of an
//! absolute-form target, which wins over `Host` (RFC 9112 §3.2.2).

use http::request::Parts;
use http::{HeaderValue, Version, header};

/// The longest method accepted. The registered methods are at most 17 bytes
/// (`UPDATEREDIRECTREF`); a 70 KB method is an attack on whatever parses it next.
pub const MAX_METHOD_LEN: usize = 32;

/// Why a request is refused with 400; the text is the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// More than one `Host` field (RFC 9112 §3.2).
    TwoHosts,
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2).
    NoHost,
    /// A method over [`MAX_METHOD_LEN`].
    LongMethod,
    /// An absolute-form target whose authority is not a valid `Host` value.
    BadAuthority,
    /// The request body's framing broke while it was forwarded (an invalid or overflowing
    /// chunk size, a body shorter than its length).
    BadBody,
}

impl Malformed {
    /// The 400 response's body.
    pub fn message(self) -> &'static str {
        match self {
            Malformed::TwoHosts => "more than one Host header\n",
            Malformed::NoHost => "HTTP/1.1 request without Host\n",
            Malformed::LongMethod => "method too long\n",
            Malformed::BadAuthority => "invalid authority in the request target\n",
            Malformed::BadBody => "malformed request body\n",
        }
    }
}

/// Checks the head and, for an absolute-form target, replaces `Host` with its authority.
pub fn check(parts: &mut Parts) -> Result<(), Malformed> {
    if parts.method.as_str().len() > MAX_METHOD_LEN {
        return Err(Malformed::LongMethod);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Malformed::TwoHosts);
    }
    if let Some(authority) = parts.uri.authority() {
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| Malformed::BadAuthority)?;
        parts.headers.insert(header::HOST, host);
        return Ok(());
    }
    if first.is_none() && parts.version == Version::HTTP_11 {
        return Err(Malformed::NoHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    #[test]
    fn each_malformation_is_named() {
        let two = parts(Request::get("/").header("host", "a").header("host", "b"));
        assert_eq!(check(&mut two.clone()), Err(Malformed::TwoHosts));
        let none = parts(Request::get("/").version(Version::HTTP_11));
        assert_eq!(check(&mut none.clone()), Err(Malformed::NoHost));
        let old = parts(Request::get("/").version(Version::HTTP_10));
        assert_eq!(check(&mut old.clone()), Ok(()));
        let long = parts(
            Request::builder()
                .method("A".repeat(33).as_str())
                .uri("/")
                .header("host", "a"),
        );
        assert_eq!(check(&mut long.clone()), Err(Malformed::LongMethod));
        let ok = parts(
            Request::builder()
                .method("A".repeat(32).as_str())
                .uri("/")
                .header("host", "a"),
        );
        assert_eq!(check(&mut ok.clone()), Ok(()));
    }

    #[test]
    fn an_absolute_target_sets_host() {
        let mut p = parts(Request::get("http://real.test:8080/x").header("host", "other"));
        assert_eq!(check(&mut p), Ok(()));
        assert_eq!(p.headers[header::HOST], "real.test:8080");
        // Absolute form needs no Host header of its own.
        let mut p = parts(Request::get("http://real.test/x").version(Version::HTTP_11));
        assert_eq!(check(&mut p), Ok(()));
        assert_eq!(p.headers[header::HOST], "real.test");
    }
}
