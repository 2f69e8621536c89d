#[hubs::client]
pub trait ChatClient {
    async fn receive(&self, text: impl serde::Serialize);
}

fn main() {}
