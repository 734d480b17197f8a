//! What `--clickhouse URL` says: the server's HTTP address, the database, the
//! user and password (from the URL, else the `JVMAPM_CLICKHOUSE_*`
//! variables). A URL that cannot be used is refused with the URL (its
//! password hidden) and what is wrong with it.

use std::fmt;

/// Where ClickHouse is and who we are there.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `http://host:port`, without user, path or query.
    pub base: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.shown())
    }
}

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "jvmapm";

impl Config {
    /// Parses `url`; `env` looks up `JVMAPM_CLICKHOUSE_USER`,
    /// `JVMAPM_CLICKHOUSE_PASSWORD` and `JVMAPM_CLICKHOUSE_DATABASE`, used
    /// where the URL says nothing.
    pub fn parse(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let bad = |why: &str| format!("--clickhouse {}: {why}", hide_password(url));
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            bad("expected http://[USER[:PASSWORD]@]HOST:PORT[/?database=NAME] (ClickHouse's HTTP interface; https is not built in)")
        })?;
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok {
            return Err(bad(
                "expected HOST:PORT after http:// (ClickHouse's HTTP port is 8123 by default)",
            ));
        }
        let (mut user, mut password) = (None, None);
        if let Some(c) = credentials {
            let (u, p) = match c.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (c, None),
            };
            user = Some(decode(u).ok_or_else(|| bad("the user is not valid percent-encoding"))?);
            password = p
                .map(|p| decode(p).ok_or_else(|| bad("the password is not valid percent-encoding")))
                .transpose()?;
        }
        let mut database = None;
        let query = tail.split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                decode(value).ok_or_else(|| bad("a parameter is not valid percent-encoding"))?;
            match key {
                "database" => database = Some(value),
                "user" => user = Some(value),
                "password" => password = Some(value),
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter {key:?} (database, user and password are known)"
                    )))
                }
            }
        }
        let database = database
            .or_else(|| env("JVMAPM_CLICKHOUSE_DATABASE"))
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let name_ok = !database.is_empty()
            && database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(bad(&format!(
                "the database name {database:?} may hold only letters, digits and _"
            )));
        }
        Ok(Config {
            base: format!("http://{host}"),
            database,
            user: user.or_else(|| env("JVMAPM_CLICKHOUSE_USER")),
            password: password.or_else(|| env("JVMAPM_CLICKHOUSE_PASSWORD")),
        })
    }

    /// The server and database, for messages (never the password).
    pub fn shown(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let base = self.base.replacen("http://", &format!("http://{user}"), 1);
        format!("{base}/?database={}", self.database)
    }
}

/// `url` with the password between `:` and `@` replaced by `***`.
fn hide_password(url: &str) -> String {
    let Some(rest) = url.strip_prefix("http://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((credentials, _)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or("");
            let at = rest[..authority_end].rfind('@').unwrap_or(0);
            format!("http://{user}:***{}", &rest[at..])
        }
        _ => url.to_string(),
    }
}

/// Percent-decodes `s`; `None` when an escape is cut short or not UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_url_gives_server_database_and_credentials() {
        let c = Config::parse("http://u%40x:p%3As@127.0.0.1:8123/?database=apm", no_env).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:8123");
        assert_eq!(c.database, "apm");
        assert_eq!(c.user.as_deref(), Some("u@x"));
        assert_eq!(c.password.as_deref(), Some("p:s"));
        assert!(!format!("{c:?}").contains("p:s"));
        let c = Config::parse("http://localhost:8123", |k| {
            (k == "JVMAPM_CLICKHOUSE_PASSWORD").then(|| "secret".to_string())
        })
        .unwrap();
        assert_eq!((c.database.as_str(), c.user), (DEFAULT_DATABASE, None));
        assert_eq!(c.password.as_deref(), Some("secret"));
    }

    #[test]
    fn a_bad_url_is_named_with_what_is_wrong_and_no_password() {
        for (url, why) in [
            ("https://h:8123", "https is not built in"),
            ("http://h", "HOST:PORT"),
            ("http://u:pw@h:99999", "HOST:PORT"),
            ("http://h:8123/?database=a;drop", "letters, digits and _"),
            ("http://h:8123/?db=x", "unknown parameter \"db\""),
            ("http://h:8123/?database=%zz", "percent-encoding"),
        ] {
            let e = Config::parse(url, no_env).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
