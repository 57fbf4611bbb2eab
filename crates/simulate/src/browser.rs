//! One simulated browser: its own cookie jar (session, device cookie, QR redemption
//! cookie), its User-Agent, its clock (which may be minutes off, as real phones' are) and
//! the events its page would record, sent in batches the way the JS SDK sends them (with
//! `sentAt`, so the server can measure the clock offset). A `429` is waited out as its
//! `Retry-After` says, like the SDK does: the simulator never hammers a server that asked
//! it to slow down.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::population::Device;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The server answered with an error the simulation did not plan for.
    #[error("{method} {path} answered {status}: {body}")]
    Unexpected {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// The status.
        status: u16,
        /// The body, for the message.
        body: String,
    },
    /// The software authenticator refused.
    #[error("authenticator: {0}")]
    Key(#[from] crate::softkey::KeyError),
    /// Anything else (ground-truth file, bad options).
    #[error("{0}")]
    Other(String),
}

/// A server answer: status and JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// The body of a 2xx answer, or an `Unexpected` error naming the request.
    pub fn ok(self, method: &Method, path: &str) -> Result<Value, SimError> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        Err(SimError::Unexpected {
            method: method.to_string(),
            path: path.to_owned(),
            status: self.status.as_u16(),
            body: self.body.to_string(),
        })
    }

    /// The API error code, when it is one.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Where the server is and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL requests go to.
    pub base: Url,
    /// The origin the pages run on (what the authenticator puts in its client data).
    pub origin: Url,
}

/// A simulated browser.
pub struct Browser {
    http: Client,
    /// The device it runs on.
    pub device: Device,
    /// `desktop` or `mobile` (the events' `device`).
    pub role: &'static str,
    /// How far its clock is off, in milliseconds.
    pub skew_ms: i64,
    /// Its events never reach the server (a content blocker stops the SDK's requests).
    pub sdk_blocked: bool,
    target: Target,
}

/// Milliseconds since the epoch on the simulator's clock.
pub fn now_ms() -> i64 {
    handoff_core::clock::now_ms()
}

impl Browser {
    /// A fresh browser (empty cookie jar) on `device`.
    pub fn new(target: &Target, device: Device, skew_ms: i64) -> Result<Self, SimError> {
        let http = Client::builder()
            .cookie_store(true)
            .user_agent(device.user_agent)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SimError::Other(format!("cannot build an HTTP client: {e}")))?;
        let role = if device.phone { "mobile" } else { "desktop" };
        Ok(Self { http, device, role, skew_ms, sdk_blocked: false, target: target.clone() })
    }

    /// The page's origin.
    pub fn origin(&self) -> &Url {
        &self.target.origin
    }

    /// Now, on this browser's clock.
    pub fn clock(&self) -> i64 {
        now_ms() + self.skew_ms
    }

    /// Sends a request (JSON body when given) and returns the answer; waits out 429s.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, SimError> {
        let url = self.target.base.join(path).map_err(|e| SimError::Other(format!("bad path {path}: {e}")))?;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response =
                request.send().await.map_err(|source| SimError::Unreachable { url: url.to_string(), source })?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.clamp(1, 60))).await;
                continue;
            }
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            return Ok(Answer { status, body });
        }
    }

    /// POST with a JSON body, expecting success.
    pub async fn post_ok(&self, path: &str, body: &Value) -> Result<Value, SimError> {
        self.call(Method::POST, path, Some(body)).await?.ok(&Method::POST, path)
    }
}

/// Per mille of event batches delivered twice (a retry after a lost answer).
pub const RESENT_PER_MILLE: u32 = 30;

/// The events one device records for one journey, sent in one batch.
pub struct Recorder {
    journey_id: String,
    flow: Option<&'static str>,
    events: Vec<Value>,
    /// Names of every event sent so far.
    pub sent: Vec<String>,
}

impl Recorder {
    /// An empty recorder for a journey; its events name `flow` once one is known.
    pub fn new(journey_id: &str, flow: Option<&'static str>) -> Self {
        Self { journey_id: journey_id.to_owned(), flow, events: Vec::new(), sent: Vec::new() }
    }

    /// The journey.
    pub fn journey_id(&self) -> &str {
        &self.journey_id
    }

    /// Moves the recorder, with what it has not sent yet, to the journey the server named
    /// (the server binds journeys to the browser that started them, and names them).
    pub fn set_journey(&mut self, journey_id: &str) {
        self.journey_id = journey_id.to_owned();
        for event in &mut self.events {
            event["journeyId"] = json!(journey_id);
        }
    }

    /// Names the flow in later events (after the server chose one).
    pub fn set_flow(&mut self, flow: &'static str) {
        self.flow = Some(flow);
    }

    /// Records an event at the browser's current time.
    pub fn track(&mut self, browser: &Browser, name: &str, attrs: Value) {
        let mut event = json!({
            "eventId": uuid::Uuid::new_v4().to_string(),
            "journeyId": self.journey_id,
            "name": name,
            "ts": browser.clock(),
            "device": browser.role,
            "attrs": attrs,
        });
        if let Some(flow) = self.flow {
            event["flow"] = json!(flow);
        }
        self.events.push(event);
    }

    /// Sends what was recorded as one batch (with `sentAt`), as the SDK does. One batch in
    /// [`RESENT_PER_MILLE`] is sent twice, as when the answer to the first was lost; a
    /// blocked SDK sends nothing.
    pub async fn flush(&mut self, browser: &Browser) -> Result<(), SimError> {
        let events = std::mem::take(&mut self.events);
        if events.is_empty() || browser.sdk_blocked {
            return Ok(());
        }
        let names: Vec<String> = events.iter().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect();
        let batch = json!({ "events": events, "sentAt": browser.clock() });
        if fastrand::u32(0..1000) < RESENT_PER_MILLE {
            browser.post_ok("/api/v1/events", &batch).await?;
        }
        let result = browser.post_ok("/api/v1/events", &batch).await?;
        if let Some(rejected) = result["rejected"].as_array().filter(|r| !r.is_empty()) {
            return Err(SimError::Other(format!("the server refused simulated events: {rejected:?}")));
        }
        self.sent.extend(names);
        Ok(())
    }
}
