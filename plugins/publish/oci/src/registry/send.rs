//! Sending a request to a registry: answering its 401 challenges (HTTP basic, or a
//! bearer token from the realm it names, kept per host and scopes) and following
//! redirects, with `Authorization` sent to the registry's own origin only.

use crate::auth::{Credentials, encode_query, parse_challenges, parse_token_response};
use crate::error::{Error, Result};
use crate::transport::{Request, Response, Transport};

use super::client::Client;
use super::http::{registry_message, resolve_location, same_origin, strip_query};

/// Redirects followed when fetching blobs.
const MAX_REDIRECTS: usize = 5;

impl<T: Transport> Client<T> {
    /// Sends a request to `host`, authenticating on a 401 challenge and retrying once.
    pub(super) fn send(&self, host: &str, scopes: &[String], request: Request) -> Result<Response> {
        let scope_key = format!("{host}|{}", scopes.join(" "));
        let host_key = format!("{host}|*");
        let cached = {
            let cache = self.auth_cache.borrow();
            cache
                .get(&scope_key)
                .or_else(|| cache.get(&host_key))
                .cloned()
        };
        let response = self.raw(&request, cached.as_deref())?;
        if response.status != 401 {
            return Ok(response);
        }
        let (header, host_wide) = self.authenticate(host, scopes, &response, cached.as_deref())?;
        let response = self.raw(&request, Some(&header))?;
        if response.status == 401 {
            return Err(Error::Unauthorized {
                registry: host.to_string(),
                detail: format!(
                    "credentials refused for {} {}{}",
                    request.method,
                    strip_query(&request.url),
                    registry_message(&response.body)
                ),
            });
        }
        self.auth_cache
            .borrow_mut()
            .insert(if host_wide { host_key } else { scope_key }, header);
        Ok(response)
    }

    fn raw(&self, request: &Request, authorization: Option<&str>) -> Result<Response> {
        match authorization {
            None => self.transport.send(request),
            Some(a) => {
                let mut r = request.clone();
                r.headers.push(("Authorization".to_string(), a.to_string()));
                self.transport.send(&r)
            }
        }
        .map_err(|e| Error::Transport(e.0))
    }

    /// Answers a 401: returns the `Authorization` value to retry with, and
    /// whether it holds for the whole host (basic) or just these scopes (token).
    fn authenticate(
        &self,
        host: &str,
        scopes: &[String],
        response: &Response,
        already_sent: Option<&str>,
    ) -> Result<(String, bool)> {
        let unauthorized = |detail: String| Error::Unauthorized {
            registry: host.to_string(),
            detail,
        };
        let challenges: Vec<_> = response
            .headers_named("www-authenticate")
            .flat_map(parse_challenges)
            .collect();
        let creds = self.credentials.get(host);
        if let Some(Credentials::Bearer(token)) = creds {
            let h = format!("Bearer {token}");
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("the bearer token was refused".into()));
            }
            return Ok((h, true));
        }
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c
                .params
                .get("realm")
                .ok_or_else(|| unauthorized("Bearer challenge without a realm".into()))?;
            if !(realm.starts_with("https://")
                || (realm.starts_with("http://") && self.plain_http.contains(host)))
            {
                return Err(unauthorized(format!(
                    "refusing token realm `{realm}` (must be https:// for an https registry)"
                )));
            }
            let mut all_scopes: Vec<String> = c
                .params
                .get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for s in scopes {
                if !all_scopes.contains(s) {
                    all_scopes.push(s.clone());
                }
            }
            let mut query = Vec::new();
            if let Some(service) = c.params.get("service") {
                query.push(format!("service={}", encode_query(service)));
            }
            for s in &all_scopes {
                query.push(format!("scope={}", encode_query(s)));
            }
            let url = if query.is_empty() {
                realm.clone()
            } else {
                format!(
                    "{realm}{}{}",
                    if realm.contains('?') { '&' } else { '?' },
                    query.join("&")
                )
            };
            let basic = creds.and_then(Credentials::basic_header);
            let token_response = self.raw(&Request::new("GET", url), basic.as_deref())?;
            if token_response.status != 200 {
                return Err(unauthorized(format!(
                    "token endpoint {realm} returned HTTP {}{}",
                    token_response.status,
                    if creds.is_none() {
                        " (no credentials given)"
                    } else {
                        ""
                    }
                )));
            }
            let token = parse_token_response(&token_response.body)
                .ok_or_else(|| unauthorized(format!("token endpoint {realm} sent no token")))?;
            let h = format!("Bearer {token}");
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("the registry refused a fresh token".into()));
            }
            return Ok((h, false));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let h = creds.and_then(Credentials::basic_header).ok_or_else(|| {
                unauthorized(
                    "the registry requires credentials (HTTP basic) and none were given".into(),
                )
            })?;
            if already_sent == Some(h.as_str()) {
                return Err(unauthorized("user name or password refused".into()));
            }
            return Ok((h, true));
        }
        Err(unauthorized(
            "HTTP 401 without a Basic or Bearer WWW-Authenticate challenge".into(),
        ))
    }

    /// GET/HEAD following redirects (blob storage often redirects to a CDN).
    /// `Authorization` is only sent to the registry's own origin.
    pub(super) fn send_following(
        &self,
        host: &str,
        scopes: &[String],
        request: Request,
    ) -> Result<Response> {
        let origin = self.origin(host);
        let mut response = self.send(host, scopes, request.clone())?;
        let mut url = request.url.clone();
        for _ in 0..MAX_REDIRECTS {
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            url = resolve_location(&url, location);
            let next = Request {
                url: url.clone(),
                ..request.clone()
            };
            response = if same_origin(&url, &origin) {
                self.send(host, scopes, next)?
            } else {
                self.raw(&next, None)?
            };
        }
        Err(Error::Registry {
            method: request.method,
            url: strip_query(&request.url).to_string(),
            status: response.status,
            message: "too many redirects".into(),
        })
    }
}
