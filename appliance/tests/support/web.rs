//! A cookie-keeping HTTP client for the admin pages, as a browser without JavaScript
//! uses them: it follows no redirects (tests look at them), keeps cookies, and reads
//! the CSRF token and the alert line out of the pages.

#![allow(dead_code)]

use super::Server;
use std::time::Duration;

/// One answer: status, `Location`, the `Set-Cookie` values, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub cookies: Vec<String>,
    pub body: String,
}

impl Answer {
    /// The text of the page's `role="alert"` element, entities decoded.
    pub fn alert(&self) -> Option<String> {
        let at = self.body.find("role=\"alert\"")?;
        let start = at + self.body[at..].find('>')? + 1;
        let end = start + self.body[start..].find('<')?;
        Some(unescape(&self.body[start..end]))
    }

    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in the page: {}", self.body))
            + marker.len();
        let end = at + self.body[at..].find('"').expect("closing quote");
        self.body[at..end].to_string()
    }

    /// The body as JSON (an API answer).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The `error` of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {self:?}"))
            .to_string()
    }

    /// The text of the element with `id`.
    pub fn by_id(&self, id: &str) -> Option<String> {
        let at = self.body.find(&format!("id=\"{id}\""))?;
        let start = at + self.body[at..].find('>')? + 1;
        let end = start + self.body[start..].find('<')?;
        Some(unescape(&self.body[start..end]))
    }
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A browser-like client of one server.
pub struct Web {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Web {
    pub fn new(server: &Server) -> Web {
        Web::of(Web::builder(), server.url(""))
    }

    /// A client of the server's plain listener whose connections come from `local` (a
    /// loopback address other than 127.0.0.1, to be a client from elsewhere).
    pub fn from_address(server: &Server, local: std::net::IpAddr) -> Web {
        Web::of(Web::builder().local_address(local), server.url(""))
    }

    /// A client of the server's HTTPS listener that trusts its certificate (from the
    /// data directory) and nothing else, so the handshake checks the certificate's
    /// names against `127.0.0.1`.
    pub fn https(server: &Server) -> Web {
        let (addr, _) = server
            .https
            .as_ref()
            .expect("the server has an HTTPS listener");
        let pem = std::fs::read(server.dir.path().join("tls/cert.pem")).expect("cert.pem");
        let cert = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
        let builder = Web::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .https_only(true)
            .tls_info(true);
        Web::of(builder, format!("https://{addr}"))
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            // The server closes a connection idle for `http.header_timeout` (10 s by
            // default); this client's runtime runs only during a call, so it would not
            // see that close, and would send the next request on the dead connection.
            .pool_idle_timeout(Duration::from_secs(5))
    }

    fn of(builder: reqwest::ClientBuilder, base: String) -> Web {
        Web {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: builder.build().expect("client"),
            base,
        }
    }

    /// The DER certificate the server presented for `GET path` (HTTPS clients only).
    pub fn peer_certificate(&self, path: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let r = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            r.extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|t| t.peer_certificate())
                .expect("the server presented a certificate")
                .to_vec()
        })
    }

    fn answer(&self, req: reqwest::RequestBuilder, what: &str) -> Answer {
        self.rt.block_on(async {
            let r = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            Answer {
                status: r.status().as_u16(),
                location: r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                cookies: r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_string)
                    .collect(),
                body: r.text().await.expect("body"),
            }
        })
    }

    pub fn get(&self, path: &str) -> Answer {
        self.answer(
            self.client.get(format!("{}{path}", self.base)),
            &format!("GET {path}"),
        )
    }

    /// A form post (`application/x-www-form-urlencoded`).
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.answer(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields),
            &format!("POST {path}"),
        )
    }

    /// A form post whose answer is a file: status, headers, bytes.
    pub fn post_for_file(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        self.rt.block_on(async {
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}"));
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.bytes().await.expect("body").to_vec())
        })
    }

    /// A form with a file, as a browser sends it: `multipart/form-data` (RFC 7578) with
    /// the file as field `field` named `file_name`, the CSRF token as field `csrf` and in
    /// the query string (`?csrf=`), as the page's form has it.
    pub fn upload(
        &self,
        path: &str,
        csrf: &str,
        field: &str,
        file_name: &str,
        file: &[u8],
    ) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        self.multipart(
            &format!("{path}{sep}csrf={csrf}"),
            csrf,
            field,
            file_name,
            file,
        )
    }

    /// [`Web::upload`] with the CSRF token in the form only, not in the URL.
    pub fn upload_without_query_token(
        &self,
        path: &str,
        csrf: &str,
        file_name: &str,
        file: &[u8],
    ) -> Answer {
        self.multipart(path, csrf, "bundle", file_name, file)
    }

    fn multipart(
        &self,
        url: &str,
        csrf: &str,
        field: &str,
        file_name: &str,
        file: &[u8],
    ) -> Answer {
        let boundary = "----streamboxTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/zstd\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.answer(
            self.client
                .post(format!("{}{url}", self.base))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
            &format!("POST {url}"),
        )
    }

    /// A post with a raw body.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.answer(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
            &format!("POST {path}"),
        )
    }

    /// A `POST` of an empty JSON object with this `Authorization` header value.
    pub fn api_with_authorization(&self, method: &str, path: &str, authorization: &str) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.answer(
            self.client
                .request(method.clone(), format!("{}{path}", self.base))
                .header("authorization", authorization)
                .header("content-type", "application/json")
                .body("{}"),
            &format!("{method} {path}"),
        )
    }

    /// A `POST` with a raw body and `Authorization: Bearer token`.
    pub fn post_raw_with_bearer(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: &str,
    ) -> Answer {
        self.answer(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body),
            &format!("POST {path}"),
        )
    }

    /// `GET`, a form `POST` with only the CSRF `token` (in the form and in
    /// `X-CSRF-Token`, which a route that streams its body reads), or a `PUT` or `DELETE`
    /// with the token in `X-CSRF-Token` and an empty JSON object, by `method`.
    pub fn request(&self, method: &str, path: &str, token: &str) -> Answer {
        match method {
            "GET" => self.get(path),
            "POST" => self.answer(
                self.client
                    .post(format!("{}{path}", self.base))
                    .header("x-csrf-token", token)
                    .form(&[("csrf", token)]),
                &format!("POST {path}"),
            ),
            other => self.api(other, path, None, Some(token), Some(&serde_json::json!({}))),
        }
    }

    /// An API call: `method` on `path`, with `Authorization: Bearer` when `bearer`,
    /// `X-CSRF-Token` when `csrf`, and `body` as JSON; the client's cookies go too.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        csrf: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.answer(req, &format!("{method} {path}"))
    }

    /// The CSRF token of the page at `path`.
    pub fn csrf(&self, path: &str) -> String {
        self.get(path).csrf()
    }

    /// Makes an API token named `name` (scope admin) on the account page, signed in;
    /// returns it.
    pub fn make_token(&self, name: &str) -> String {
        let t = self.csrf("/admin/account");
        let a = self.post("/admin/account/tokens", &[("csrf", &t), ("name", name)]);
        assert_eq!(a.status, 200, "{a:?}");
        a.by_id("api-token").expect("the token is shown")
    }

    /// Runs the whole wizard as administrator `admin` with `password`, creating stream
    /// `stream`; returns its key. Each step must be accepted.
    pub fn complete_setup(&self, password: &str, stream: &str) -> String {
        let t = self.csrf("/setup");
        let steps: [(&str, Vec<(&str, &str)>); 4] = [
            (
                "/setup/admin",
                vec![
                    ("name", "admin"),
                    ("password", password),
                    ("again", password),
                ],
            ),
            (
                "/setup/identity",
                vec![("name", "Test hall"), ("time_zone", "UTC")],
            ),
            ("/setup/network", vec![]),
            ("/setup/storage", vec![("keep", "7d")]),
        ];
        for (path, mut fields) in steps {
            let t = if path == "/setup/admin" {
                t.clone()
            } else {
                self.csrf("/setup")
            };
            fields.push(("csrf", &t));
            let a = self.post(path, &fields);
            assert_eq!(
                (a.status, a.location.as_deref()),
                (303, Some("/setup")),
                "{path}: {a:?}"
            );
        }
        let t = self.csrf("/setup");
        let a = self.post("/setup/stream", &[("csrf", &t), ("name", stream)]);
        assert_eq!(a.status, 200, "{a:?}");
        let key = a
            .by_id("key")
            .unwrap_or_else(|| panic!("no key shown: {}", a.body));
        let a = self.post("/setup/finish", &[("csrf", &t)]);
        assert_eq!(a.location.as_deref(), Some("/admin?welcome=1"), "{a:?}");
        key
    }
}

/// Runs `f` on a pool over the server's database: the tests' way to move time on for
/// sessions, or to read a secret the server made.
pub fn with_db<T, F: std::future::Future<Output = T>>(
    server: &Server,
    f: impl FnOnce(sqlx::SqlitePool) -> F,
) -> T {
    let db = server.dir.path().join("streambox.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the server's database");
        f(pool).await
    })
}

/// The administrator's password the tests set up with.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Completes setup on `server` (with stream `lobby`) and makes an API token named
/// `token_name` on the account page: the signed-in browser and the token.
pub fn admin_with_token(server: &Server, token_name: &str) -> (Web, String) {
    let web = Web::new(server);
    web.complete_setup(ADMIN_PASSWORD, "lobby");
    let token = web.make_token(token_name);
    (web, token)
}

/// A JSON API call with the bearer `token` and no cookies.
pub fn api_call(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    Web::new(server).api(method, path, Some(token), None, body.as_ref())
}

/// A new stream key for `name` through the API with the bearer `token` (the one setup
/// made is not kept): the key.
pub fn new_stream_key(server: &Server, token: &str, name: &str) -> String {
    let a = api_call(
        server,
        token,
        "POST",
        &format!("/api/streams/{name}/key"),
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    a.json()["key"].as_str().expect("key").to_string()
}
