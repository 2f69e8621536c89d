#[hubs::client]
pub trait ChatClient {
    #[client(name = "Other")]
    async fn receive_message(&self, text: String);
}

fn main() {}
