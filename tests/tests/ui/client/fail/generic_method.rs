#[hubs::client]
pub trait ChatClient {
    async fn receive<T: serde::Serialize + Sync>(&self, value: T);
}

fn main() {}
