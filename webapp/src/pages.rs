//! The HTML pages: the Tera templates of `templates/`, compiled into the binary (so the
//! image carries no template directory) and parsed once at ignition.

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::request::Request;
use rocket::response::content::RawHtml;
use serde::Serialize;

/// Every page by the name the others `{% extends %}` it by. The names end in `.html`, so
/// Tera escapes every value put into them for HTML.
const TEMPLATES: [(&str, &str); 3] = [
    ("base.html", include_str!("../templates/base.html.tera")),
    ("index.html", include_str!("../templates/index.html.tera")),
    (
        "not_found.html",
        include_str!("../templates/not_found.html.tera"),
    ),
];

/// The parsed templates, managed by Rocket.
pub struct Pages(tera::Tera);

impl Pages {
    pub fn parse() -> Result<Self, tera::Error> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(TEMPLATES)?;
        Ok(Pages(tera))
    }

    /// Page `name` with `values` (a struct or map of what the template names).
    pub fn render(&self, name: &str, values: &impl Serialize) -> Result<RawHtml<String>, Status> {
        let context = tera::Context::from_serialize(values).map_err(|e| failed(name, &e))?;
        self.0
            .render(name, &context)
            .map(RawHtml)
            .map_err(|e| failed(name, &e))
    }

    /// The pages of the app that `req` reached.
    pub fn of<'r>(req: &'r Request<'_>) -> Result<&'r Pages, Status> {
        req.rocket().state::<Pages>().ok_or_else(|| {
            log::error!("the pages are not managed: pages::stage() is not attached");
            Status::InternalServerError
        })
    }
}

fn failed(name: &str, error: &tera::Error) -> Status {
    // Tera's Display is the outermost error only; the cause says which variable or tag.
    let cause = std::error::Error::source(error)
        .map(|cause| format!(": {cause}"))
        .unwrap_or_default();
    log::error!("rendering page {name}: {error}{cause}");
    Status::InternalServerError
}

/// Parses the templates at ignition: a broken one stops the app before it serves.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("HTML pages", |rocket| async {
        match Pages::parse() {
            Ok(pages) => Ok(rocket.manage(pages)),
            Err(e) => {
                log::error!("the HTML templates do not parse: {e}");
                Err(rocket)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct NotFound<'a> {
        path: &'a str,
    }

    #[test]
    fn values_are_escaped_for_html() {
        let pages = Pages::parse().expect("the templates parse");
        let page = pages
            .render(
                "not_found.html",
                &NotFound {
                    path: "/<script>alert(1)</script>",
                },
            )
            .expect("renders");
        assert!(
            page.0
                .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{}",
            page.0
        );
        assert!(!page.0.contains("<script>alert"), "{}", page.0);
        assert!(
            page.0.contains("<title>Not found - URL Shortener</title>"),
            "{}",
            page.0
        );
    }

    #[test]
    fn a_missing_value_is_a_500_not_a_panic() {
        let pages = Pages::parse().expect("the templates parse");
        #[derive(Serialize)]
        struct Nothing {}
        assert_eq!(
            pages.render("not_found.html", &Nothing {}).err(),
            Some(Status::InternalServerError)
        );
    }
}
