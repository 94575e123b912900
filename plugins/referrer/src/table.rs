//! The bundled referrer table: domains of the search engines, social
//! networks and webmail services that send most traffic, after the
//! open referer databases (Snowplow's referer-parser, Matomo's
//! searchengine and social lists). A domain matches itself and its
//! subdomains; a `*` label matches any one label (`google.*` is every
//! Google country domain).

/// A known source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub medium: &'static str,
    pub name: &'static str,
    /// Query parameters that hold the search words, in order of preference.
    pub params: &'static [&'static str],
}

const fn search(name: &'static str, params: &'static [&'static str]) -> Source {
    Source { medium: "search", name, params }
}
const fn social(name: &'static str) -> Source {
    Source { medium: "social", name, params: &[] }
}
const fn email(name: &'static str) -> Source {
    Source { medium: "email", name, params: &[] }
}

/// Most specific first: `mail.google.com` before `google.*`.
static TABLE: &[(&str, Source)] = &[
    ("mail.google.com", email("Gmail")),
    ("inbox.google.com", email("Gmail")),
    ("outlook.live.com", email("Outlook.com")),
    ("outlook.office.com", email("Outlook.com")),
    ("mail.live.com", email("Outlook.com")),
    ("mail.yahoo.com", email("Yahoo! Mail")),
    ("mail.aol.com", email("AOL Mail")),
    ("mail.proton.me", email("Proton Mail")),
    ("mail.yandex.ru", email("Yandex Mail")),
    ("e.mail.ru", email("Mail.ru")),
    ("news.google.com", social("Google News")),
    ("plus.google.com", social("Google+")),
    ("google.*", search("Google", &["q", "query"])),
    ("google.co.*", search("Google", &["q", "query"])),
    ("google.com.*", search("Google", &["q", "query"])),
    ("bing.com", search("Bing", &["q"])),
    ("search.yahoo.com", search("Yahoo!", &["p", "q"])),
    ("yahoo.com", search("Yahoo!", &["p", "q"])),
    ("yahoo.co.jp", search("Yahoo! Japan", &["p"])),
    ("duckduckgo.com", search("DuckDuckGo", &["q"])),
    ("baidu.com", search("Baidu", &["wd", "word", "kw"])),
    ("yandex.*", search("Yandex", &["text"])),
    ("yandex.com.tr", search("Yandex", &["text"])),
    ("ecosia.org", search("Ecosia", &["q"])),
    ("search.brave.com", search("Brave", &["q"])),
    ("startpage.com", search("Startpage", &["query", "q"])),
    ("qwant.com", search("Qwant", &["q"])),
    ("ask.com", search("Ask", &["q"])),
    ("naver.com", search("Naver", &["query"])),
    ("seznam.cz", search("Seznam", &["q"])),
    ("sogou.com", search("Sogou", &["query"])),
    ("so.com", search("360.cn", &["q"])),
    ("aol.com", search("AOL", &["q", "query"])),
    ("facebook.com", social("Facebook")),
    ("fb.me", social("Facebook")),
    ("l.facebook.com", social("Facebook")),
    ("instagram.com", social("Instagram")),
    ("twitter.com", social("Twitter")),
    ("t.co", social("Twitter")),
    ("x.com", social("Twitter")),
    ("linkedin.com", social("LinkedIn")),
    ("lnkd.in", social("LinkedIn")),
    ("reddit.com", social("Reddit")),
    ("pinterest.com", social("Pinterest")),
    ("youtube.com", social("YouTube")),
    ("youtu.be", social("YouTube")),
    ("tiktok.com", social("TikTok")),
    ("vk.com", social("VKontakte")),
    ("ok.ru", social("Odnoklassniki")),
    ("weibo.com", social("Sina Weibo")),
    ("tumblr.com", social("Tumblr")),
    ("quora.com", social("Quora")),
    ("news.ycombinator.com", social("Hacker News")),
    ("medium.com", social("Medium")),
    ("github.com", social("GitHub")),
    ("stackoverflow.com", social("Stack Overflow")),
    ("discord.com", social("Discord")),
    ("slack.com", social("Slack")),
    ("whatsapp.com", social("WhatsApp")),
    ("telegram.org", social("Telegram")),
    ("t.me", social("Telegram")),
    ("threads.net", social("Threads")),
    ("bsky.app", social("Bluesky")),
    ("mastodon.social", social("Mastodon")),
];

/// The source a domain belongs to.
pub fn lookup(domain: &str) -> Option<Source> {
    let domain = domain.trim_end_matches('.');
    TABLE.iter().find(|(pattern, _)| matches(domain, pattern)).map(|(_, s)| *s)
}

/// `domain` is `pattern` or a subdomain of it; `*` is one label.
fn matches(domain: &str, pattern: &str) -> bool {
    let d: Vec<&str> = domain.split('.').collect();
    let p: Vec<&str> = pattern.split('.').collect();
    if d.len() < p.len() {
        return false;
    }
    d[d.len() - p.len()..].iter().zip(&p).all(|(d, p)| *p == "*" || d == p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_subdomains() {
        assert_eq!(lookup("www.google.de").map(|s| s.name), Some("Google"));
        assert_eq!(lookup("www.google.co.uk").map(|s| s.name), Some("Google"));
        assert_eq!(lookup("mail.google.com").map(|s| s.medium), Some("email"));
        assert_eq!(lookup("notgoogle.example"), None);
        assert_eq!(lookup("m.facebook.com").map(|s| s.name), Some("Facebook"));
    }
}
