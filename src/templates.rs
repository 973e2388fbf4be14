//! The HTML templates, embedded in the binary so it runs from any directory, and
//! rendered by tera with autoescaping on for every `.html` template.

use tera::{Context, Tera};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("home_vendor.html", include_str!("../templates/home_vendor.html")),
    (
        "vendor_customers.html",
        include_str!("../templates/vendor_customers.html"),
    ),
    (
        "vendor_customer.html",
        include_str!("../templates/vendor_customer.html"),
    ),
    ("account.html", include_str!("../templates/account.html")),
    (
        "account_password.html",
        include_str!("../templates/account_password.html"),
    ),
    ("people.html", include_str!("../templates/people.html")),
    (
        "fleet_dashboard.html",
        include_str!("../templates/fleet_dashboard.html"),
    ),
    ("fleet_devices.html", include_str!("../templates/fleet_devices.html")),
    ("fleet_device.html", include_str!("../templates/fleet_device.html")),
    ("fleet_tokens.html", include_str!("../templates/fleet_tokens.html")),
    ("fleet_webhooks.html", include_str!("../templates/fleet_webhooks.html")),
    ("fleet_rollouts.html", include_str!("../templates/fleet_rollouts.html")),
    ("fleet_windows.html", include_str!("../templates/fleet_windows.html")),
    ("advisories.atom", include_str!("../templates/advisories.atom")),
    ("csaf_directory.html", include_str!("../templates/csaf_directory.html")),
    ("advisory_index.html", include_str!("../templates/advisory_index.html")),
    ("advisory.html", include_str!("../templates/advisory.html")),
    (
        "vendor_advisories.html",
        include_str!("../templates/vendor_advisories.html"),
    ),
    (
        "vendor_advisory_form.html",
        include_str!("../templates/vendor_advisory_form.html"),
    ),
    (
        "vendor_advisory.html",
        include_str!("../templates/vendor_advisory.html"),
    ),
    (
        "advisory_fields.html",
        include_str!("../templates/advisory_fields.html"),
    ),
    ("vendor_patches.html", include_str!("../templates/vendor_patches.html")),
    ("vendor_log.html", include_str!("../templates/vendor_log.html")),
    ("vendor_patch.html", include_str!("../templates/vendor_patch.html")),
    (
        "vendor_rollouts.html",
        include_str!("../templates/vendor_rollouts.html"),
    ),
    ("vendor_rollout.html", include_str!("../templates/vendor_rollout.html")),
    (
        "customer_patches.html",
        include_str!("../templates/customer_patches.html"),
    ),
];

/// The stylesheet, served at `/static/style.css`.
pub const STYLESHEET: &str = include_str!("../static/style.css");
/// The upload script of the vendor patch screen, served at `/static/upload.js`.
pub const UPLOAD_SCRIPT: &str = include_str!("../static/upload.js");

pub struct Templates {
    tera: Tera,
}

impl Templates {
    pub fn load() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.iter().copied())?;
        tera.autoescape_on(vec![".html", ".atom"]);
        tera.register_filter("urlencode", urlencode);
        tera.register_filter("when", crate::when::filter);
        Ok(Templates { tera })
    }

    pub fn render(&self, name: &str, context: &Context) -> Result<String, tera::Error> {
        self.tera.render(name, context)
    }
}

/// `urlencode`: a value as one query-string component (the HTML escaping that
/// follows makes it safe in an attribute).
fn urlencode(value: &tera::Value, _: &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = value.as_str().ok_or_else(|| tera::Error::msg("urlencode takes text"))?;
    Ok(tera::Value::String(
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut embedded: Vec<String> = TEMPLATES.iter().map(|(name, _)| (*name).to_owned()).collect();
        embedded.sort();
        assert_eq!(files, embedded);
    }

    #[test]
    fn every_template_parses_and_escapes() {
        let templates = Templates::load().unwrap();
        let mut context = Context::new();
        context.insert("status", &400);
        context.insert("title", "Bad request");
        context.insert("message", "<script>alert(1)</script>");
        let html = templates.render("error.html", &context).unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert(1)"));
    }
}
