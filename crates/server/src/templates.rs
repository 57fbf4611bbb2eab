//! The server-rendered pages' templates, embedded in the binary: one minijinja environment
//! built once for the dashboard and the provider's pages (consent, errors, sign-out).
//! Template names end in `.html`, so everything printed is HTML-escaped unless a template
//! marks a server-drawn chart `safe`; a misspelt variable fails loudly (a unit test renders
//! every template).

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior, Value};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../assets/dashboard/layout.html")),
    ("sign_in.html", include_str!("../assets/dashboard/sign_in.html")),
    ("message.html", include_str!("../assets/dashboard/message.html")),
    ("overview.html", include_str!("../assets/dashboard/overview.html")),
    ("search_form.html", include_str!("../assets/dashboard/search_form.html")),
    ("journeys.html", include_str!("../assets/dashboard/journeys.html")),
    ("timeline.html", include_str!("../assets/dashboard/timeline.html")),
    ("webhooks.html", include_str!("../assets/dashboard/webhooks.html")),
    ("provider/layout.html", include_str!("../assets/provider/layout.html")),
    ("provider/consent.html", include_str!("../assets/provider/consent.html")),
    ("provider/message.html", include_str!("../assets/provider/message.html")),
    ("provider/logout.html", include_str!("../assets/provider/logout.html")),
    ("provider/recovery_link.html", include_str!("../assets/provider/recovery_link.html")),
    ("provider/verify_email.html", include_str!("../assets/provider/verify_email.html")),
];

static ENV: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(env)
});

/// Renders `template` with `ctx`; the error names the template and what failed.
pub fn render(template: &str, ctx: Value) -> Result<String, String> {
    let env = ENV.as_ref().map_err(Clone::clone)?;
    env.get_template(template).and_then(|t| t.render(ctx)).map_err(|e| format!("{template}: {e:#}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        assert!(super::ENV.as_ref().is_ok(), "{:?}", super::ENV.as_ref().err());
    }
}
