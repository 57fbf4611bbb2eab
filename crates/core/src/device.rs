//! The device a request comes from: operating system, browser and form factor, read from
//! the User-Agent by the `woothee` parser and corrected by User-Agent Client Hints where
//! the browser sends them (they survive UA reduction; a Mac and an iPad can look alike in
//! the UA string). Missing information is "unknown", never a guess.

use serde::{Deserialize, Serialize};

/// Form factor of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormFactor {
    /// A laptop or desktop computer.
    Desktop,
    /// A phone.
    Phone,
    /// A tablet.
    Tablet,
    /// Not known.
    Unknown,
}

impl FormFactor {
    /// The stored/serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Phone => "phone",
            Self::Tablet => "tablet",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a stored name; anything else is `Unknown`.
    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "desktop" => Self::Desktop,
            "phone" => Self::Phone,
            "tablet" => Self::Tablet,
            _ => Self::Unknown,
        }
    }
}

/// What we know about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// `Windows`, `macOS`, `iOS`, `iPadOS`, `Android`, `Linux`, `ChromeOS` or `unknown`.
    pub os: String,
    /// `Chrome`, `Safari`, `Firefox`, `Edge`, `Opera`, `Samsung Internet`, … or `unknown`.
    pub browser: String,
    /// Desktop, phone or tablet.
    pub form_factor: FormFactor,
}

/// Request headers that describe the device (all optional).
#[derive(Debug, Clone, Default)]
pub struct DeviceHeaders<'a> {
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Sec-CH-UA-Platform`, e.g. `"Windows"` (quotes included as sent).
    pub ch_platform: Option<&'a str>,
    /// `Sec-CH-UA-Mobile`, `?1` or `?0`.
    pub ch_mobile: Option<&'a str>,
}

const UNKNOWN: &str = "unknown";

impl DeviceInfo {
    /// A device we know nothing about.
    pub fn unknown() -> Self {
        Self { os: UNKNOWN.into(), browser: UNKNOWN.into(), form_factor: FormFactor::Unknown }
    }

    /// Reads the device from request headers.
    pub fn from_headers(headers: &DeviceHeaders<'_>) -> Self {
        let mut info = headers.user_agent.map(Self::from_user_agent).unwrap_or_else(Self::unknown);
        if let Some(platform) = headers.ch_platform.map(|p| p.trim().trim_matches('"')) {
            let os = match platform {
                "Windows" => Some("Windows"),
                "macOS" => Some("macOS"),
                "Android" => Some("Android"),
                "iOS" => Some("iOS"),
                "Linux" => Some("Linux"),
                "Chrome OS" | "ChromeOS" => Some("ChromeOS"),
                _ => None,
            };
            if let Some(os) = os {
                info.os = os.into();
            }
        }
        match headers.ch_mobile.map(str::trim) {
            Some("?1") => info.form_factor = FormFactor::Phone,
            Some("?0") if info.form_factor == FormFactor::Phone => info.form_factor = FormFactor::Desktop,
            _ => {}
        }
        info
    }

    /// Reads the device from a User-Agent string alone.
    pub fn from_user_agent(ua: &str) -> Self {
        let parser = woothee::parser::Parser::new();
        let Some(r) = parser.parse(ua) else {
            return Self::unknown();
        };
        let os = match r.os {
            "Mac OSX" => "macOS",
            "iPhone" | "iPod" | "iOS" => "iOS",
            "iPad" => "iPadOS",
            "Android" => "Android",
            "Linux" => "Linux",
            "ChromeOS" => "ChromeOS",
            other if other.starts_with("Windows") && other != "Windows Phone OS" => "Windows",
            _ => UNKNOWN,
        };
        let browser = match r.name {
            "Chrome" => "Chrome",
            "Safari" => "Safari",
            "Firefox" => "Firefox",
            "Edge" => "Edge",
            "Opera" => "Opera",
            "Vivaldi" => "Vivaldi",
            "SamsungBrowser" => "Samsung Internet",
            "Yandex Browser" => "Yandex Browser",
            "Internet Explorer" => "Internet Explorer",
            "Webview" => "WebView",
            _ => UNKNOWN,
        };
        let form_factor = if os == "iPadOS" || (os == "Android" && !ua.contains("Mobile")) {
            FormFactor::Tablet
        } else {
            match r.category {
                "pc" => FormFactor::Desktop,
                "smartphone" | "mobilephone" => FormFactor::Phone,
                _ => FormFactor::Unknown,
            }
        };
        Self { os: os.into(), browser: browser.into(), form_factor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIN_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const MAC_SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const PIXEL: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
    const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

    fn d(ua: &str) -> (String, String, FormFactor) {
        let i = DeviceInfo::from_user_agent(ua);
        (i.os, i.browser, i.form_factor)
    }

    #[test]
    fn common_user_agents() {
        assert_eq!(d(WIN_CHROME), ("Windows".into(), "Chrome".into(), FormFactor::Desktop));
        assert_eq!(d(MAC_SAFARI), ("macOS".into(), "Safari".into(), FormFactor::Desktop));
        assert_eq!(d(IPHONE), ("iOS".into(), "Safari".into(), FormFactor::Phone));
        assert_eq!(d(PIXEL), ("Android".into(), "Chrome".into(), FormFactor::Phone));
        assert_eq!(d(EDGE), ("Windows".into(), "Edge".into(), FormFactor::Desktop));
        assert_eq!(d(FIREFOX_LINUX), ("Linux".into(), "Firefox".into(), FormFactor::Desktop));
        assert_eq!(d("curl/8.0"), ("unknown".into(), "unknown".into(), FormFactor::Unknown));
    }

    #[test]
    fn client_hints_correct_the_user_agent() {
        let h = DeviceHeaders { user_agent: Some(PIXEL), ch_platform: Some("\"Android\""), ch_mobile: Some("?0") };
        let info = DeviceInfo::from_headers(&h);
        assert_eq!(info.os, "Android");
        assert_eq!(info.form_factor, FormFactor::Desktop);
        let none = DeviceInfo::from_headers(&DeviceHeaders::default());
        assert_eq!(none, DeviceInfo::unknown());
    }
}
