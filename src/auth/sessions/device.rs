//! A session's device name ("Chrome on macOS") from the User-Agent header, for the session list.

/// Browsers by a token of their User-Agent. Order matters: Edge and Opera also say Chrome, Chrome also
/// says Safari.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
];

/// Operating systems by a token of the User-Agent. Order matters: iOS says "like Mac OS X", Android
/// says Linux.
const SYSTEMS: &[(&str, &str)] = &[
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
];

/// The name of the first entry whose token the User-Agent contains.
fn first_named(user_agent: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .find(|(token, _)| user_agent.contains(token))
        .map(|&(_, name)| name)
}

/// "Chrome on macOS", from a User-Agent header; `None` when nothing is recognised.
pub fn device_name(user_agent: &str) -> Option<String> {
    let browser = first_named(user_agent, BROWSERS);
    let os = first_named(user_agent, SYSTEMS);
    match (browser, os) {
        (Some(b), Some(o)) => Some(format!("{b} on {o}")),
        (Some(b), None) => Some(b.to_owned()),
        (None, Some(o)) => Some(o.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_from_common_user_agents() {
        let mac_chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(device_name(mac_chrome).as_deref(), Some("Chrome on macOS"));
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                    Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0";
        assert_eq!(device_name(edge).as_deref(), Some("Edge on Windows"));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_name(iphone).as_deref(), Some("Safari on iOS"));
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        assert_eq!(device_name(firefox).as_deref(), Some("Firefox on Linux"));
        assert_eq!(device_name("curl/8.0").as_deref(), Some("curl"));
        assert_eq!(device_name("something else"), None);
    }
}
