#[hubs::client]
pub trait ChatClient {
    async fn receive(text: String);
}

fn main() {}
