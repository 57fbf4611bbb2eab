//! `handoff device-login`: plays a TV or a terminal signing in through Handoff's device
//! authorization grant (RFC 8628), as a demo and a smoke test of a running server. It asks
//! for a code, prints the QR of `verification_uri_complete` in the terminal (Unicode
//! half blocks, light on dark like a terminal), the code and where to type it, polls as
//! the server says (growing the interval on `slow_down`), and when someone approves it
//! checks the ID token against the server's published keys and prints its claims.
//! Everything meant for a person goes to stderr; only the claims (JSON) go to stdout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

/// `handoff device-login`.
#[derive(Args, Debug)]
pub struct DeviceLoginArgs {
    /// The Handoff server (its issuer), e.g. http://localhost:8080. [env: HANDOFF_URL]
    #[arg(long, value_name = "URL", env = "HANDOFF_URL")]
    url: String,
    /// The client id, registered with device sign-in allowed (`handoff clients add --device`).
    #[arg(long, value_name = "ID")]
    client: String,
    /// The client's secret, for a confidential client. [env: HANDOFF_CLIENT_SECRET]
    #[arg(long, value_name = "SECRET", env = "HANDOFF_CLIENT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Scopes to ask for.
    #[arg(long, default_value = "openid profile")]
    scope: String,
}

fn say(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

/// The QR of `text` as Unicode half blocks, light modules drawn (for a dark terminal).
pub fn terminal_qr(text: &str) -> Result<String, String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::L)
        .map_err(|e| format!("the address does not fit in a QR code: {e}"))?;
    Ok(code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build())
}

async fn json(response: reqwest::Response) -> Result<(reqwest::StatusCode, Value), String> {
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("reading the answer failed: {e}"))?;
    let value = serde_json::from_str(&body)
        .map_err(|_| format!("the server answered {status} with something that is not JSON: {body:.200}"))?;
    Ok((status, value))
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| format!("the answer has no {key}: {v}"))
}

/// Runs the demo; exit 0 when signed in, 1 when denied or expired, 2 on other errors.
pub async fn run(args: DeviceLoginArgs) -> ExitCode {
    match sign_in(&args).await {
        Ok(claims) => {
            println!("{}", serde_json::to_string_pretty(&claims).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            say(format!("handoff device-login: {message}"));
            ExitCode::from(code)
        }
    }
}

async fn sign_in(args: &DeviceLoginArgs) -> Result<Value, (u8, String)> {
    let fail = |m: String| (2u8, m);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("handoff-device-login/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| fail(format!("could not make an HTTP client: {e}")))?;
    let base = args.url.trim_end_matches('/');
    let discovery_url = format!("{base}/.well-known/openid-configuration");
    let reach = |e: reqwest::Error| fail(format!("could not reach {base}: {e}"));
    let (_, discovery) = json(http.get(&discovery_url).send().await.map_err(reach)?).await.map_err(fail)?;
    let device_endpoint = text(&discovery, "device_authorization_endpoint").map_err(fail)?.to_owned();
    let token_endpoint = text(&discovery, "token_endpoint").map_err(fail)?.to_owned();
    let jwks_uri = text(&discovery, "jwks_uri").map_err(fail)?.to_owned();

    let authenticated = |request: reqwest::RequestBuilder, form: Vec<(&str, String)>| match &args.secret {
        Some(secret) => request.basic_auth(&args.client, Some(secret)).form(&form),
        None => {
            let mut form = form;
            form.push(("client_id", args.client.clone()));
            request.form(&form)
        }
    };
    let asked = authenticated(http.post(&device_endpoint), vec![("scope", args.scope.clone())]);
    let (status, codes) = json(asked.send().await.map_err(reach)?).await.map_err(fail)?;
    if !status.is_success() {
        return Err(fail(format!(
            "the server refused to start a device sign-in ({status}): {} {}",
            codes.get("error").and_then(Value::as_str).unwrap_or("?"),
            codes.get("error_description").and_then(Value::as_str).unwrap_or("")
        )));
    }
    let device_code = text(&codes, "device_code").map_err(fail)?.to_owned();
    let user_code = text(&codes, "user_code").map_err(fail)?;
    let complete = text(&codes, "verification_uri_complete").map_err(fail)?;
    let uri = text(&codes, "verification_uri").map_err(fail)?;
    let expires_in = codes.get("expires_in").and_then(Value::as_u64).unwrap_or(600);
    let mut interval = codes.get("interval").and_then(Value::as_u64).unwrap_or(5).max(1);

    say(format!("Sign in to {} on this device.\n", args.client));
    say(terminal_qr(complete).map_err(fail)?);
    say(format!(
        "Scan the code with your phone, or open\n    {uri}\non a device where you are signed in and type the code\n    {user_code}\n"
    ));
    say(format!("Link: {complete}"));

    let deadline = Instant::now() + Duration::from_secs(expires_in);
    let mut polls = 0u32;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        polls += 1;
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        say(format!("Waiting for approval… (poll {polls}, every {interval} s, {}:{:02} left)", left / 60, left % 60));
        let form = vec![
            ("grant_type", handoff_core::oidc::device::DEVICE_GRANT_TYPE.to_owned()),
            ("device_code", device_code.clone()),
        ];
        let polled = authenticated(http.post(&token_endpoint), form);
        let (status, answer) = json(polled.send().await.map_err(reach)?).await.map_err(fail)?;
        if status.is_success() {
            let id_token = text(&answer, "id_token").map_err(fail)?;
            let (_, jwks) = json(http.get(&jwks_uri).send().await.map_err(reach)?).await.map_err(fail)?;
            let claims = handoff_core::oidc::keys::verify_with_jwks(id_token, &jwks)
                .ok_or_else(|| fail("the ID token does not verify with the server's published keys".into()))?;
            say("Signed in. The ID token verifies with the server's keys; its claims:");
            return Ok(Value::Object(claims));
        }
        match answer.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some("access_denied") => return Err((1, "the sign-in was denied".into())),
            Some("expired_token") => return Err((1, "the code expired before anyone approved it".into())),
            other => {
                return Err(fail(format!(
                    "the token endpoint answered {status}: {} {}",
                    other.unwrap_or("?"),
                    answer.get("error_description").and_then(Value::as_str).unwrap_or("")
                )));
            }
        }
    }
}
