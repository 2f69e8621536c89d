#[hubs::client(typescript = true)]
pub trait ChatClient {
    async fn receive(&self, text: String);
}

fn main() {}
