#[hubs::client]
pub trait ChatClient {
    async fn receive_message(&self, text: String);
    #[client(rename = "receiveMessage")]
    async fn receive_again(&self, text: String);
}

fn main() {}
