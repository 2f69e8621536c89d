#[hubs::client]
pub trait ChatClient {
    async fn receive_message(self, text: String);
}

fn main() {}
