//! The web console's files, served at `/console/` on the admin listener.
//!
//! The files (`cargo xtask build` writes them into a directory `console` beside the binary) are
//! read once at start-up from `admin.console_dir` and served from memory: a fixed list of
//! names, so no request reaches the file system, with a Content-Security-Policy that lets the
//! page run only its own script and WebAssembly and talk only to this origin. The files are
//! public (they hold no data); the data comes from `/v1/`, behind the token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::ConsoleDir;

/// What the page may do: its own script and WebAssembly, its own style, requests to this
/// origin only; no framing, no forms posting elsewhere, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' \
     'wasm-unsafe-eval'; connect-src 'self'; style-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's files and their media types; nothing else is served.
const FILES: [(&str, &str); 5] = [
    ("index.html", "text/html; charset=utf-8"),
    ("boot.js", "text/javascript; charset=utf-8"),
    ("console.js", "text/javascript; charset=utf-8"),
    ("console_bg.wasm", "application/wasm"),
    ("console.css", "text/css; charset=utf-8"),
];

/// The console could not be loaded from a configured directory.
#[derive(Debug, thiserror::Error)]
#[error("admin.console_dir: reading {path}: {source}")]
pub struct ConsoleError {
    path: PathBuf,
    source: std::io::Error,
}

/// The console's files, in memory.
#[derive(Debug, Clone)]
pub struct Assets {
    files: Arc<Vec<(&'static str, &'static str, Bytes)>>,
}

impl Assets {
    /// Read every file. A directory left at its default that has no console (a build without
    /// it) is `None`; a configured one must be complete.
    pub fn load(dir: &ConsoleDir) -> Result<Option<Assets>, ConsoleError> {
        let path = dir.path();
        if !dir.is_configured() && !path.join(FILES[0].0).is_file() {
            tracing::info!(
                dir = %path.display(),
                "no web console there (set admin.console_dir): /console/ is not served"
            );
            return Ok(None);
        }
        let assets = Assets::read(path)?;
        tracing::info!(dir = %path.display(), "web console at /console/");
        Ok(Some(assets))
    }

    fn read(dir: &Path) -> Result<Assets, ConsoleError> {
        let mut files = Vec::with_capacity(FILES.len());
        for (name, media_type) in FILES {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|source| ConsoleError { path, source })?;
            files.push((name, media_type, Bytes::from(bytes)));
        }
        Ok(Assets {
            files: Arc::new(files),
        })
    }

    fn get(&self, name: &str) -> Option<(&'static str, Bytes)> {
        let name = if name.is_empty() { "index.html" } else { name };
        self.files
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, media_type, bytes)| (*media_type, bytes.clone()))
    }
}

/// `GET /console` (redirected to `/console/`), `/console/` and `/console/FILE`.
pub fn routes(
    assets: Option<Assets>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("console")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .map(move |full: warp::path::FullPath, tail: warp::path::Tail| {
            if full.as_str() == "/console" {
                let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/console/"));
                return r;
            }
            serve(assets.as_ref(), tail.as_str())
        })
}

fn serve(assets: Option<&Assets>, name: &str) -> Response {
    let Some(assets) = assets else {
        return super::error::ApiError::NotFound(
            "the web console is not installed (admin.console_dir)".into(),
        )
        .into_response();
    };
    let Some((media_type, bytes)) = assets.get(name) else {
        return super::error::ApiError::NotFound(format!("no console file {name:?}"))
            .into_response();
    };
    let mut r = Response::new(bytes.into());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A new build is picked up at the next load.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_console() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in FILES {
            std::fs::write(dir.path().join(name), format!("content of {name}")).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn files_are_served_with_the_policy() {
        let dir = dir_with_console();
        let assets = Assets::load(&ConsoleDir::configured(dir.path())).unwrap();
        let routes = routes(assets);
        let r = warp::test::request().path("/console/").reply(&routes).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), "content of index.html");
        assert_eq!(
            r.headers()["content-security-policy"],
            CONTENT_SECURITY_POLICY
        );
        let r = warp::test::request()
            .path("/console/console_bg.wasm")
            .reply(&routes)
            .await;
        assert_eq!(r.headers()["content-type"], "application/wasm");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let r = warp::test::request().path("/console").reply(&routes).await;
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()["location"], "/console/");
    }

    #[tokio::test]
    async fn only_the_console_files_are_served() {
        let dir = dir_with_console();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        let routes = routes(Assets::load(&ConsoleDir::configured(dir.path())).unwrap());
        for path in ["/console/secret", "/console/..%2Fsecret", "/console/a/b"] {
            let r = warp::test::request().path(path).reply(&routes).await;
            assert_ne!(r.status(), 200, "{path}");
        }
    }

    #[test]
    fn a_missing_default_directory_is_no_console_but_a_configured_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        assert!(
            Assets::load(&ConsoleDir::default_at(&missing))
                .unwrap()
                .is_none()
        );
        let e = Assets::load(&ConsoleDir::configured(&missing)).unwrap_err();
        assert!(e.to_string().contains("admin.console_dir"), "{e}");
    }
}
