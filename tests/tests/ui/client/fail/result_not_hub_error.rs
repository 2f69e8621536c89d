#[hubs::client]
pub trait ChatClient {
    async fn fetch(&self) -> Result<u32, String>;
}

fn main() {}
