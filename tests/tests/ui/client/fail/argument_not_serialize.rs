pub struct NotData;

#[hubs::client]
pub trait ChatClient {
    async fn receive(&self, value: NotData);
}

fn main() {}
