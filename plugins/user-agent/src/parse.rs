//! A user-agent parser over product tokens.

/// What a user-agent string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    /// The browser or client (`Chrome`, `Mobile Safari`, `Googlebot`...).
    pub family: String,
    /// Its major version.
    pub version: Option<String>,
    /// The operating system (`Windows`, `iOS`, `Mac OS X`, `Android`...).
    pub os: String,
    /// Its version (`10`, `17.1`, `10.15`).
    pub os_version: Option<String>,
    /// The device (`iPhone`, `Samsung SM-S918B`, `Generic Smartphone`,
    /// `Mac`, `Spider`, or `Other` for a desktop computer).
    pub device: String,
    /// A known crawler, bot or scripted client.
    pub crawler: bool,
}

/// Lowercase fragments that mark crawlers and scripted clients.
const CRAWLER_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "mediapartners-google",
    "adsbot",
    "bingpreview",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "libwww-perl",
    "okhttp",
    "java/",
    "apache-httpclient",
    "scrapy",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "ahrefs",
    "semrush",
];

/// Browser tokens, most specific first: (token, family, family on mobile).
const BROWSERS: &[(&str, &str, &str)] = &[
    ("EdgiOS/", "Edge Mobile", "Edge Mobile"),
    ("EdgA/", "Edge Mobile", "Edge Mobile"),
    ("Edg/", "Edge", "Edge Mobile"),
    ("Edge/", "Edge", "Edge Mobile"),
    ("OPR/", "Opera", "Opera Mobile"),
    ("SamsungBrowser/", "Samsung Internet", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi", "Vivaldi"),
    ("UCBrowser/", "UC Browser", "UC Browser"),
    ("FBAV/", "Facebook", "Facebook"),
    ("Instagram ", "Instagram", "Instagram"),
    ("FxiOS/", "Firefox iOS", "Firefox iOS"),
    ("Firefox/", "Firefox", "Firefox Mobile"),
    ("CriOS/", "Chrome Mobile iOS", "Chrome Mobile iOS"),
    ("Chromium/", "Chromium", "Chromium"),
    ("Chrome/", "Chrome", "Chrome Mobile"),
    ("MSIE ", "IE", "IE Mobile"),
];

pub fn parse(ua: &str) -> UserAgent {
    let lower = ua.to_ascii_lowercase();
    if let Some(crawler) = crawler(ua, &lower) {
        return crawler;
    }
    let mobile = has(ua, "Mobile") || has(ua, "iPhone");
    let (family, version) = browser(ua, mobile);
    let (os, os_version) = os(ua);
    UserAgent { family, version, os, os_version, device: device(ua, mobile), crawler: false }
}

fn crawler(ua: &str, lower: &str) -> Option<UserAgent> {
    if !marker_finders().iter().any(|f| f.find(lower.as_bytes()).is_some()) {
        return None;
    }
    // The crawler's name is the first product token that carries a marker
    // (URLs inside the string name the operator, not the product).
    let token = ua
        .split([' ', ';', '(', ')', ','])
        .filter(|t| !t.is_empty() && !has(t, "http") && !t.starts_with('+'))
        .find(|t| {
            let t = t.to_ascii_lowercase();
            CRAWLER_MARKERS.iter().any(|m| has(&t, m.trim_end_matches('/')))
        })
        .unwrap_or("Spider");
    let (name, version) = token.split_once('/').unwrap_or((token, ""));
    Some(UserAgent {
        family: name.to_owned(),
        version: major(version),
        os: "Other".into(),
        os_version: None,
        device: "Spider".into(),
        crawler: true,
    })
}

/// The digits-and-dots version that starts `text`.
fn version_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    &text[..end]
}

/// Substring search with the memchr crate: vectorized natively and, built
/// with `simd128`, in WebAssembly too (the standard library's is scalar there).
fn has(haystack: &str, needle: &str) -> bool {
    memchr::memmem::find(haystack.as_bytes(), needle.as_bytes()).is_some()
}

/// Searchers for the crawler markers and browser tokens, built once per
/// instance (that is, once per batch) and used for every event.
fn marker_finders() -> &'static [memchr::memmem::Finder<'static>] {
    static FINDERS: std::sync::OnceLock<Vec<memchr::memmem::Finder<'static>>> = std::sync::OnceLock::new();
    FINDERS.get_or_init(|| CRAWLER_MARKERS.iter().map(|m| memchr::memmem::Finder::new(m.as_bytes())).collect())
}

fn browser_finders() -> &'static [memchr::memmem::Finder<'static>] {
    static FINDERS: std::sync::OnceLock<Vec<memchr::memmem::Finder<'static>>> = std::sync::OnceLock::new();
    FINDERS.get_or_init(|| BROWSERS.iter().map(|(t, _, _)| memchr::memmem::Finder::new(t.as_bytes())).collect())
}

/// The major part of a version.
fn major(version: &str) -> Option<String> {
    let v = version_at(version);
    let m = v.split('.').next().unwrap_or_default();
    (!m.is_empty()).then(|| m.to_owned())
}

/// The version after the first occurrence of `token`.
fn after<'a>(ua: &'a str, token: &str) -> Option<&'a str> {
    memchr::memmem::find(ua.as_bytes(), token.as_bytes()).map(|i| &ua[i + token.len()..])
}

fn browser(ua: &str, mobile: bool) -> (String, Option<String>) {
    for ((token, family, mobile_family), finder) in BROWSERS.iter().zip(browser_finders()) {
        if let Some(rest) = finder.find(ua.as_bytes()).map(|i| &ua[i + token.len()..]) {
            let mut name = if mobile { *mobile_family } else { *family };
            if *token == "Chrome/" && has(ua, "; wv)") {
                name = "Chrome Mobile WebView";
            }
            return (name.to_owned(), major(rest));
        }
    }
    if has(ua, "Trident/") {
        return ("IE".into(), after(ua, "rv:").and_then(major));
    }
    if has(ua, "Safari/") || has(ua, "AppleWebKit/") && (has(ua, "iPhone") || has(ua, "iPad")) {
        let family = if mobile || has(ua, "iPad") { "Mobile Safari" } else { "Safari" };
        return (family.into(), after(ua, "Version/").and_then(major));
    }
    ("Other".into(), None)
}

fn os(ua: &str) -> (String, Option<String>) {
    if let Some(rest) = after(ua, "Windows Phone ") {
        return ("Windows Phone".into(), Some(version_at(rest).to_owned()).filter(|v| !v.is_empty()));
    }
    if let Some(rest) = after(ua, "Windows NT ") {
        let v = match version_at(rest) {
            "10.0" => "10",
            "6.3" => "8.1",
            "6.2" => "8",
            "6.1" => "7",
            "6.0" => "Vista",
            "5.1" | "5.2" => "XP",
            other => other,
        };
        return ("Windows".into(), Some(v.to_owned()).filter(|v| !v.is_empty()));
    }
    for token in ["iPhone OS ", "CPU OS "] {
        if let Some(rest) = after(ua, token) {
            return ("iOS".into(), dotted(rest, '_', 2));
        }
    }
    if let Some(rest) = after(ua, "Android ") {
        return ("Android".into(), dotted(rest, '.', 2));
    }
    if has(ua, "Android") {
        return ("Android".into(), None);
    }
    if let Some(rest) = after(ua, "Mac OS X ") {
        return ("Mac OS X".into(), dotted(rest, '_', 2).or_else(|| dotted(rest, '.', 2)));
    }
    if has(ua, "CrOS") {
        return ("Chrome OS".into(), None);
    }
    if has(ua, "Ubuntu") {
        return ("Ubuntu".into(), None);
    }
    if has(ua, "Linux") {
        return ("Linux".into(), None);
    }
    ("Other".into(), None)
}

/// The first `parts` numbers of a version written with `sep` (`17_1_2`).
fn dotted(text: &str, sep: char, parts: usize) -> Option<String> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == sep)).unwrap_or(text.len());
    let numbers: Vec<&str> = text[..end].split(sep).filter(|p| !p.is_empty()).take(parts).collect();
    (!numbers.is_empty()).then(|| numbers.join("."))
}

fn device(ua: &str, mobile: bool) -> String {
    for apple in ["iPhone", "iPad", "iPod"] {
        if has(ua, apple) {
            return apple.into();
        }
    }
    if has(ua, "Android") {
        if let Some(model) = android_model(ua) {
            return model;
        }
        return if mobile { "Generic Smartphone" } else { "Generic Tablet" }.into();
    }
    if has(ua, "Macintosh") {
        return "Mac".into();
    }
    "Other".into()
}

/// The model named after the Android version inside the first
/// parentheses: `(Linux; Android 14; SM-S918B Build/UP1A)`.
fn android_model(ua: &str) -> Option<String> {
    let inside = ua.split_once('(')?.1.split_once(')')?.0;
    let mut parts = inside.split(';').map(str::trim);
    parts.find(|p| p.starts_with("Android"))?;
    let model = parts.next()?.split(" Build/").next()?.trim();
    // Reduced user agents say `K` instead of the model.
    if model.is_empty() || model == "K" || model == "wv" || model.starts_with("rv:") {
        return None;
    }
    if model.starts_with("SM-") || model.starts_with("GT-") {
        return Some(format!("Samsung {model}"));
    }
    Some(model.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, family: &str, version: &str, os: &str, os_version: &str, device: &str) {
        let p = parse(ua);
        let got = (
            p.family.as_str(),
            p.version.as_deref().unwrap_or(""),
            p.os.as_str(),
            p.os_version.as_deref().unwrap_or(""),
            p.device.as_str(),
        );
        assert_eq!(got, (family, version, os, os_version, device), "{ua}");
        assert!(!p.crawler, "{ua}");
    }

    #[test]
    fn browsers_systems_and_devices() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Safari/537.36",
            "Chrome",
            "120",
            "Windows",
            "10",
            "Other",
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "17",
            "iOS",
            "17.1",
            "iPhone",
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
            "Safari",
            "17",
            "Mac OS X",
            "10.15",
            "Mac",
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome Mobile",
            "120",
            "Android",
            "14",
            "Samsung SM-S918B",
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            "Edge",
            "120",
            "Windows",
            "10",
            "Other",
        );
        check(
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Firefox",
            "121",
            "Ubuntu",
            "",
            "Other",
        );
        check("Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko", "IE", "11", "Windows", "7", "Other");
        check(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "120",
            "Android",
            "10",
            "Generic Tablet",
        );
        check("something else entirely", "Other", "", "Other", "", "Other");
    }

    #[test]
    fn crawlers_are_named() {
        let bot = parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert!(bot.crawler);
        assert_eq!(
            (bot.family.as_str(), bot.version.as_deref(), bot.device.as_str()),
            ("Googlebot", Some("2"), "Spider")
        );
        assert_eq!(parse("curl/8.5.0").family, "curl");
        assert_eq!(parse("python-requests/2.31.0").family, "python-requests");
        assert!(parse("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)").crawler);
        assert!(parse("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)").crawler);
    }
}
