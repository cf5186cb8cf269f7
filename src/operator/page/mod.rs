//! The operator's web page: `GET /` serves one document (its HTML, style and script embedded in the
//! binary, nothing fetched from elsewhere); `GET /page/events` streams the page's state as server-sent
//! events, whole at first and then what changed; `GET /page/state` answers the whole state once. With a
//! token, `/?token=TOKEN` sets it as an HttpOnly cookie (the page and its stream then send it) and
//! redirects to `/`.

pub mod live;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::operator::auth::Token;
use crate::operator::Shared;

pub use live::Pages;

/// The cookie that carries the token for the page.
pub const COOKIE: &str = "regbox_token";

/// A comment sent on a quiet stream this often, so that proxies and the browser keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Changes that come together are sent as one message after this pause.
const SETTLE: Duration = Duration::from_millis(100);

/// The page: `index.html` with `page.css` and `page.js` put in.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("index.html")
        .replace("/*STYLE*/", include_str!("page.css"))
        .replace("/*SCRIPT*/", include_str!("page.js"))
});

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// The page itself.
pub fn document() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(PAGE.as_str())).boxed_unsync())
        .expect("a valid response")
}

/// `/?token=TOKEN`: the token as an HttpOnly cookie and a redirect to `/` (so it leaves the address
/// bar and the history), when it is the operator's; None when the query holds no token.
pub fn sign_in(query: Option<&str>, token: Option<&Token>) -> Option<Response<Body>> {
    let given = query?.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    let bearer = format!("Bearer {given}");
    let admitted = token.is_some_and(|t| t.admits(Some(bearer.as_bytes())));
    let mut res = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", "/")
        .body(Full::new(Bytes::new()).boxed_unsync())
        .expect("a valid response");
    if admitted {
        let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(hyper::header::SET_COOKIE, v);
        }
    } else if token.is_some() {
        return None; // answered 401 as any request without the token
    }
    Some(res)
}

/// The token a request's cookie carries, as an `Authorization` value (`Bearer …`).
pub fn cookie_bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|t| format!("Bearer {t}"))
}

/// The whole state, once.
pub fn state(op: &Shared) -> Value {
    message(op, &BTreeMap::new(), true).0
}

/// One message of the stream: every cluster's view with what is new since `seen`, and what the page
/// needs to know of the operator.
fn message(
    op: &Shared,
    seen: &BTreeMap<String, u64>,
    full: bool,
) -> (Value, BTreeMap<String, u64>) {
    let (clusters, next) = op.pages.state(&op.states(), seen);
    let about = live::About {
        read_only: op.read_only,
        version: env!("CARGO_PKG_VERSION"),
    };
    (
        json!({ "about": about, "full": full, "clusters": clusters }),
        next,
    )
}

/// The page's event stream: the whole state at once, then what changed at each change, and a
/// heartbeat comment on a quiet stream; it lives until the page goes away.
pub fn events(op: Shared) -> Response<Body> {
    let (viewer, version) = live::Viewer::new(op.clone());
    let first: Option<BTreeMap<String, u64>> = None;
    let frames = futures::stream::unfold(
        (op, viewer, version, first),
        |(op, viewer, mut version, seen)| async move {
            let (text, next) = match &seen {
                None => {
                    version.borrow_and_update();
                    let (m, next) = message(&op, &BTreeMap::new(), true);
                    (format!("event: state\ndata: {m}\n\n"), next)
                }
                Some(seen) => match tokio::time::timeout(HEARTBEAT, version.changed()).await {
                    Err(_) => (": still here\n\n".to_string(), seen.clone()),
                    Ok(Err(_)) => return None, // the operator is stopping
                    Ok(Ok(())) => {
                        tokio::time::sleep(SETTLE).await;
                        version.borrow_and_update();
                        let (m, next) = message(&op, seen, false);
                        (format!("event: state\ndata: {m}\n\n"), next)
                    }
                },
            };
            Some((frame(text), (op, viewer, version, Some(next))))
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("a valid response")
}

fn frame(text: String) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_one_document_with_its_style_and_script_inside_and_no_outside_address() {
        let page = PAGE.as_str();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("/*STYLE*/") && !page.contains("/*SCRIPT*/"));
        assert!(page.contains("new EventSource(\"page/events\")"));
        for outside in ["http://", "https://", "src=", "@import", "url(http"] {
            assert!(!page.contains(outside), "the page names {outside}");
        }
    }

    #[test]
    fn a_token_in_the_query_becomes_a_cookie_and_the_cookie_a_bearer() {
        let token = Token::new("s3cret").unwrap();
        let res = sign_in(Some("token=s3cret"), Some(&token)).unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()["location"], "/");
        let cookie = res.headers()[hyper::header::SET_COOKIE].to_str().unwrap();
        assert_eq!(
            cookie,
            "regbox_token=s3cret; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(sign_in(Some("token=wrong"), Some(&token)).is_none());
        assert!(sign_in(Some("x=1"), Some(&token)).is_none());
        assert!(sign_in(None, Some(&token)).is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::COOKIE,
            HeaderValue::from_static("a=1; regbox_token=s3cret"),
        );
        assert_eq!(cookie_bearer(&headers).as_deref(), Some("Bearer s3cret"));
        assert_eq!(cookie_bearer(&HeaderMap::new()), None);
    }
}
