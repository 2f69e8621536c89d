#[hubs::client]
pub trait ChatClient {
    #[client(rename = "a", rename = "b")]
    async fn receive(&self, text: String);
}

fn main() {}
