//! Credentials never reach a log line or an error message: [`redact`] masks the password of
//! every `scheme://user:password@host` URL in a text, whether or not the URL is otherwise valid.

/// What a masked password reads as.
pub const MASK: &str = "***";

/// `text` with the password of every URL's user info replaced by [`MASK`]
/// (`https://crate:s3cret@db:4200` → `https://crate:***@db:4200`). The user name stays, so a
/// message still says who was refused. Text without `://` comes back unchanged (no allocation
/// beyond the copy).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first path, query or fragment character, or at anything that
        // cannot be part of a URL in a message (space, quote, bracket).
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | ')' | ']') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_masked_in_valid_and_invalid_urls() {
        assert_eq!(redact("https://crate:s3cret@db:4200/x"), "https://crate:***@db:4200/x");
        assert_eq!(
            redact("url \"http://u:p@ss@host:bad port\": invalid"),
            "url \"http://u:***@host:bad port\": invalid"
        );
        assert_eq!(redact("a http://u:pw@h and ftp://v:pw2@g."), "a http://u:***@h and ftp://v:***@g.");
        assert_eq!(redact("http://user@host"), "http://user@host");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("http://h:4200/_sql?x=a@b"), "http://h:4200/_sql?x=a@b");
        assert!(!redact("htps://crate:%zz@@@h").contains("%zz"));
    }
}
