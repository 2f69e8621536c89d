use std::time::Duration;

use hubs::{client, ConnectionId, Context, hub, HubContext, HubError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Note {
    text: String,
}

/// The chat's clients.
#[client]
pub trait ChatClient {
    /// A message for the room.
    async fn receive_message(&self, user: String, text: String);
    async fn note(&self, note: Note);
    async fn ping(&self);
    async fn borrowed(&self, text: &str, ids: &[u32]);
    #[client(rename = "getMessage")]
    async fn get_message(&self) -> Result<String, HubError>;
    async fn confirm(&self, question: String) -> Result<bool, HubError>;
    async fn ack(&self) -> Result<(), HubError>;
}

#[client(crate = "::hubs")]
pub trait Quiet {
    async fn hush(&self);
}

pub struct Chat;

#[hub(client = ChatClient)]
impl Chat {
    pub async fn send_message(&self, cx: &Context<Self>, user: String, text: String) -> Result<(), HubError> {
        let clients = cx.clients();
        clients.all().receive_message(user.clone(), text.clone()).await?;
        let _ = clients.others().ping().await;
        let _ = clients.caller().note(Note { text: text.clone() }).await;
        let _ = clients.group("room").borrowed(&text, &[1, 2]).await;
        let _ = clients.others_in_group("room").ping().await;
        let _ = clients.group_except("room", [cx.connection_id().clone()]).ping().await;
        let _ = clients.groups(["a", "b"]).ping().await;
        let _ = clients.all_except([cx.connection_id().clone()]).ping().await;
        let _ = clients.clients([cx.connection_id().clone()]).ping().await;
        let _ = clients.user("ann").ping().await;
        let _ = clients.users(["ann", "bob"]).ping().await;
        let _ = clients.all().recipients().send("Untyped", (1, 2)).await;
        Ok(())
    }

    pub async fn ask(&self, cx: &Context<Self>, id: ConnectionId) -> Result<String, HubError> {
        let _: bool = cx.clients().caller().confirm("sure?".into()).await?;
        cx.clients().caller().ack().await?;
        cx.clients().client(id).get_message().await
    }

    pub async fn poll(&self, cx: &Context<Self>) -> Vec<String> {
        let Ok(answers) = cx.clients().group("room").ask().timeout(Duration::from_secs(1)).get_message() else {
            return Vec::new();
        };
        answers
            .within(Duration::from_secs(2))
            .await
            .into_iter()
            .filter_map(|(_, answer)| answer.ok())
            .collect()
    }

    pub async fn first(&self, cx: &Context<Self>) -> Option<bool> {
        let answers = cx.clients().all().ask().confirm("anyone?".into()).ok()?;
        answers.first().await.map(|(_, yes)| yes)
    }
}

async fn from_outside(context: HubContext<Chat>) -> Result<String, HubError> {
    let _ = context.clients().all().receive_message("server".into(), "tick".into()).await;
    let _ = context.clients().all().ask().get_message().map(|answers| answers.all());
    context.clients().client("some-id").get_message().await
}

fn main() {
    let _ = from_outside;
}
