pub struct NotData;

#[hubs::client]
pub trait ChatClient {
    async fn fetch(&self) -> Result<NotData, hubs::HubError>;
}

fn main() {}
