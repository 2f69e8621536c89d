//! A server-only build: `scripts/test` runs this file with `--no-default-features
//! --features macros`, so `#[hub]` and `#[client]` must expand without the client (no
//! `hubs-client` in the build at all). Under the workspace's usual features it runs too.

use hubs::{Context, HubError, client, hub};

/// What the server calls on clients.
#[client]
pub(crate) trait Room {
    /// A message.
    async fn said(&self, text: String);
    /// A client result.
    async fn ask(&self) -> Result<String, HubError>;
}

struct Chat;

#[hub(client = Room)]
impl Chat {
    pub(crate) async fn say(&self, cx: &Context<Self>, text: String) {
        let _ = cx.clients().all().said(text).await;
    }

    pub(crate) async fn question(&self, cx: &Context<Self>) -> Result<String, HubError> {
        cx.clients().caller().ask().await
    }
}

#[test]
fn a_hub_with_a_typed_client_builds_without_the_client() {
    let service = hubs::Server::new().hub("/chat", Chat).build();
    assert!(service.is_ok());
}
