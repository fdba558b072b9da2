//! Client side of the internal RPC: HTTP/1.1 with pooled keep-alive connections and a
//! deadline on every call. gRPC was weighed and not adopted: the messages are few and
//! fixed, and this keeps protobuf code generation (and `protoc`) out of the build.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::auth::ClusterAuth;
use super::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("transport: {0}")]
    Transport(String),
    #[error("status {0}: {1}")]
    Status(StatusCode, String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

const BINARY: &str = "application/octet-stream";

#[derive(Clone)]
pub struct RpcClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Signs every call when the cluster has a secret.
    auth: ClusterAuth,
}

impl RpcClient {
    /// A client whose calls are signed with `secret` (unsigned when empty).
    pub fn new(secret: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Self {
            client,
            auth: ClusterAuth::new(secret),
        }
    }

    pub async fn get(&self, addr: &str, path: &str, timeout: Duration) -> Result<Bytes, RpcError> {
        self.call(Method::GET, addr, path, Bytes::new(), BINARY, timeout)
            .await
    }

    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        self.call(Method::POST, addr, path, Bytes::from(body), BINARY, timeout)
            .await
    }

    /// One call; a status outside 2xx is an error carrying the body's text.
    pub async fn call(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: Bytes,
        content_type: &str,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}{path}"))
            .header("content-type", content_type);
        if let Some(headers) =
            self.auth
                .sign(method.as_str(), path, crate::clock::now_secs(), &body)
        {
            for (name, value) in headers {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| RpcError::Transport(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| RpcError::Transport(e.to_string()))?
                .to_bytes();
            match status {
                s if s.is_success() => Ok(body),
                s => Err(RpcError::Status(
                    s,
                    String::from_utf8_lossy(&body).into_owned(),
                )),
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| RpcError::Timeout(timeout))?
    }
}
