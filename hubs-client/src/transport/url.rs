//! The URLs the transports request: the hub URL with a path suffix and query parameters,
//! and its `http(s)` form.

/// `base` + `suffix` on the path, keeping the query and adding `extra` to it.
pub(crate) fn with_path_and_query(base: &str, suffix: &str, extra: &[(&str, &str)]) -> String {
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let mut url = format!("{}{suffix}", path.trim_end_matches('/'));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    for (key, value) in extra {
        if !params.iter().any(|p| p.split('=').next() == Some(key)) {
            params.push(format!("{key}={value}"));
        }
    }
    if !params.is_empty() {
        url.push('?');
        url.push_str(&params.join("&"));
    }
    url
}

/// The refresh URL of hub `url`: `/refresh` appended to its path (a trailing `/` kept),
/// its query as it is (the official client's `new URL`, `pathname += "refresh"`).
pub(crate) fn refresh_url(url: &str) -> String {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let mut refresh = path.to_owned();
    // A URL without a path (`http://host:5000`) has the path `/`.
    let has_path = path
        .split_once("://")
        .is_none_or(|(_, rest)| rest.contains('/'));
    if !has_path || !refresh.ends_with('/') {
        refresh.push('/');
    }
    refresh.push_str("refresh");
    if let Some(query) = query {
        refresh.push('?');
        refresh.push_str(query);
    }
    refresh
}

/// The URL with an `http(s)` scheme (a `ws(s)` one is mapped).
pub(crate) fn http_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_query() {
        assert_eq!(
            with_path_and_query(
                "http://h/chat?room=7",
                "/negotiate",
                &[("negotiateVersion", "1")]
            ),
            "http://h/chat/negotiate?room=7&negotiateVersion=1"
        );
        assert_eq!(
            with_path_and_query("http://h/chat/", "/negotiate", &[("negotiateVersion", "1")]),
            "http://h/chat/negotiate?negotiateVersion=1"
        );
        assert_eq!(
            with_path_and_query("http://h/chat", "", &[("id", "x")]),
            "http://h/chat?id=x"
        );
        assert_eq!(http_url("wss://h/chat"), "https://h/chat");
        assert_eq!(refresh_url("http://h/hub"), "http://h/hub/refresh");
        assert_eq!(refresh_url("http://h/hub/"), "http://h/hub/refresh");
        assert_eq!(
            refresh_url("http://h/hub?x=1&&y"),
            "http://h/hub/refresh?x=1&&y"
        );
        assert_eq!(refresh_url("http://h:5000"), "http://h:5000/refresh");
        assert_eq!(
            refresh_url("http://h:5000?a=b"),
            "http://h:5000/refresh?a=b"
        );
        assert_eq!(http_url("ws://h/chat"), "http://h/chat");
        assert_eq!(http_url("https://h/chat"), "https://h/chat");
    }
}
