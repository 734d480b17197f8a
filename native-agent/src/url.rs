//! An outgoing call's URL as its CLIENT span shows it: `url.full` without
//! the credentials (`user:password@`) and without the values of its query
//! (`?id=7&token=x` becomes `?id=&token=`: which parameters were sent is
//! kept, what they said is not) or its fragment, and `server.address` and
//! `server.port` taken from it. Runs on the exporter thread, on the bytes an
//! application thread copied as the client had them.

/// Where an outgoing call went.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The URL with credentials, query values and fragment left out.
    pub full: String,
    /// The host, without the brackets of an IPv6 address; empty when the
    /// URL names none.
    pub host: &'a str,
    /// The port, given or the scheme's own (80, 443); `None` when neither.
    pub port: Option<u16>,
}

/// Splits `url` (`scheme://[user[:password]@]host[:port][/path][?query][#fragment]`).
pub fn target(url: &str) -> Target<'_> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = if scheme.is_some() {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    } else {
        0
    };
    let (authority, rest) = rest.split_at(authority_end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_port(host_port);
    let without_fragment = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    };
    let mut full = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        full.push_str(scheme);
        full.push_str("://");
        full.push_str(host_port);
    }
    full.push_str(path);
    if let Some(query) = query {
        full.push('?');
        for (n, parameter) in query.split('&').enumerate() {
            if n > 0 {
                full.push('&');
            }
            match parameter.split_once('=') {
                Some((key, _)) => {
                    full.push_str(key);
                    full.push('=');
                }
                None => full.push_str(parameter),
            }
        }
    }
    let default_port = match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    Target {
        full,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port: match port {
            Some(given) => given.parse().ok(),
            None => default_port,
        },
    }
}

/// `host:port` into the host and the port's text when one is given (an
/// IPv6 address keeps its colons inside brackets).
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_values_and_fragments_never_leave() {
        let t =
            target("https://alice:s3cret@api.example.com:8443/orders/7?id=7&token=abc&flag#top");
        assert_eq!(
            t.full,
            "https://api.example.com:8443/orders/7?id=&token=&flag"
        );
        assert_eq!((t.host, t.port), ("api.example.com", Some(8443)));
        let t = target("http://bob@h/p?q=a=b");
        assert_eq!(t.full, "http://h/p?q=");
    }

    #[test]
    fn the_port_is_the_schemes_when_none_is_given() {
        assert_eq!(target("http://example.com").port, Some(80));
        assert_eq!(target("HTTPS://example.com/x").port, Some(443));
        assert_eq!(target("ftp://example.com/x").port, None);
        let t = target("http://[::1]:9090/a");
        assert_eq!(
            (t.host, t.port, t.full.as_str()),
            ("::1", Some(9090), "http://[::1]:9090/a")
        );
        let t = target("http://[::1]/a");
        assert_eq!((t.host, t.port), ("::1", Some(80)));
    }

    #[test]
    fn a_url_without_a_host_keeps_its_path() {
        let t = target("/relative?x=1");
        assert_eq!(
            (t.full.as_str(), t.host, t.port),
            ("/relative?x=", "", None)
        );
        assert_eq!(target("").full, "");
        assert_eq!(target("http://h:notaport/").port, None);
    }
}
