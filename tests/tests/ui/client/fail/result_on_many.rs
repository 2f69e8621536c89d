use hubs::{client, Context, hub, HubError};

#[client]
pub trait ChatClient {
    async fn get_message(&self) -> Result<String, HubError>;
}

pub struct Chat;

#[hub(client = ChatClient)]
impl Chat {
    pub async fn ask_everyone(&self, cx: &Context<Self>) -> Result<String, HubError> {
        cx.clients().all().get_message().await
    }
}

fn main() {}
