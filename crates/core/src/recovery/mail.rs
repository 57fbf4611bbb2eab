//! The mails recovery sends, and when the worker tries a failed one again. A mail says who
//! asked ("someone on Chrome on Windows near Berlin asked to sign in to …"), so a person who
//! did not ask knows to ignore it; plain text plus simple HTML (escaped).

use crate::clock::Millis;

/// Who asked, for the mail's text.
#[derive(Debug, Clone, Default)]
pub struct MailContext {
    /// Browser, e.g. `Chrome`.
    pub browser: Option<String>,
    /// Operating system, e.g. `Windows`.
    pub os: Option<String>,
    /// Approximate place, when a GeoIP database knows the address.
    pub place: Option<String>,
}

impl MailContext {
    /// "someone on Chrome on Windows near Berlin, Germany".
    pub fn someone(&self) -> String {
        let known = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty() && *s != "unknown").map(str::to_owned);
        let mut out = String::from("someone");
        match (known(&self.browser), known(&self.os)) {
            (Some(b), Some(o)) => out.push_str(&format!(" on {b} on {o}")),
            (Some(x), None) | (None, Some(x)) => out.push_str(&format!(" on {x}")),
            (None, None) => {}
        }
        if let Some(place) = known(&self.place) {
            out.push_str(&format!(" near {place}"));
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Subject, text and HTML of an email code mail.
pub fn email_code_mail(site: &str, code: &str, minutes: u64, asker: &MailContext) -> (String, String, String) {
    let who = asker.someone();
    let subject = format!("{code} is your sign-in code for {site}");
    let text = format!(
        "Your sign-in code for {site} is\n\n    {code}\n\nIt works once, for {minutes} minutes.\n\n\
         It was asked for by {who}. If that was not you, ignore this mail: nobody can sign in \
         without the code.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">\
         <p>Your sign-in code for {site_html} is</p>\
         <p style=\"font-size:28px;font-weight:bold;letter-spacing:4px\">{code}</p>\
         <p>It works once, for {minutes} minutes.</p>\
         <p style=\"color:#555\">It was asked for by {who_html}. If that was not you, ignore this mail: \
         nobody can sign in without the code.</p></body></html>",
        site_html = escape(site),
        who_html = escape(&who),
    );
    (subject, text, html)
}

/// Subject, text and HTML of the mail that verifies an address at sign-up.
pub fn verification_mail(site: &str, link: &str, asker: &MailContext) -> (String, String, String) {
    let who = asker.someone();
    let subject = format!("Confirm your email address for {site}");
    let text = format!(
        "An account on {site} was created with this address by {who}.\n\nConfirm that it is yours:\n\n    \
         {link}\n\nThe link works once, for 24 hours. If you did not create the account, ignore this mail.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">\
         <p>An account on {site_html} was created with this address by {who_html}.</p>\
         <p><a href=\"{link_html}\">Confirm that it is yours</a></p>\
         <p style=\"color:#555\">The link works once, for 24 hours. If you did not create the account, ignore \
         this mail.</p></body></html>",
        site_html = escape(site),
        who_html = escape(&who),
        link_html = escape(link),
    );
    (subject, text, html)
}

/// When to try a mail again after `attempts` failed tries: 10 s, 30 s, 1.5 min, … capped
/// at 30 min, with up to a fifth of jitter (from `jitter`, 0–255) so a failing server is
/// not hit by every queued mail at once. `None` after 12 tries (about 3 hours): give up.
pub fn backoff(attempts: u32, now: Millis, jitter: u8) -> Option<Millis> {
    if attempts >= 12 {
        return None;
    }
    let base: Millis = (10_000_i64.saturating_mul(3_i64.saturating_pow(attempts.saturating_sub(1)))).min(1_800_000);
    Some(now.saturating_add(base).saturating_add(base / 5 * Millis::from(jitter) / 255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_names_who_asked_and_escapes_html() {
        let asker =
            MailContext { browser: Some("Chrome".into()), os: Some("Windows".into()), place: Some("Berlin".into()) };
        let (subject, text, html) = email_code_mail("Notes <&>", "123456", 10, &asker);
        assert!(subject.contains("123456"));
        assert!(text.contains("someone on Chrome on Windows near Berlin"), "{text}");
        assert!(html.contains("Notes &lt;&amp;&gt;") && !html.contains("Notes <&>"));
        assert_eq!(MailContext::default().someone(), "someone");
    }

    #[test]
    fn backoff_grows_then_gives_up() {
        assert_eq!(backoff(1, 0, 0), Some(10_000));
        assert_eq!(backoff(2, 0, 0), Some(30_000));
        assert_eq!(backoff(11, 0, 0), Some(1_800_000));
        assert!(backoff(3, 0, 255).unwrap() > backoff(3, 0, 0).unwrap());
        assert_eq!(backoff(12, 0, 0), None);
    }
}
