#[hubs::client]
pub trait ChatClient {
    type Message;
    async fn receive(&self, text: String);
}

fn main() {}
