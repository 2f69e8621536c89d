#[hubs::client]
pub trait ChatClient {
    async fn count(&self) -> u32;
}

fn main() {}
