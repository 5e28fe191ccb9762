//! The bench's HTTP client: one keep-alive connection per simulated client,
//! without a proxy, TLS or compression between the figures and the server.

use std::net::SocketAddr;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::error::Result;

/// One client of the API. Each has a pool of its own, and sends one request
/// at a time, so it holds one connection, kept alive between requests.
pub(crate) struct ApiClient {
    client: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub(crate) fn new(address: SocketAddr) -> Result<ApiClient> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .build()?;
        Ok(ApiClient {
            client,
            base: format!("http://{address}"),
        })
    }

    /// `GET path` as the holder of `token`; answers the status once the
    /// whole answer is read.
    pub(crate) async fn get(&self, path: &str, token: &str) -> Result<u16> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok(status)
    }

    /// `POST path` with a JSON body as the holder of `token`: (status, body).
    pub(crate) async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Vec<u8>)> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body)?)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?.to_vec()))
    }
}
