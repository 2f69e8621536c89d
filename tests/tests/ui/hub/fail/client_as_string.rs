#[hubs::client]
pub trait ChatClient {
    async fn receive(&self, text: String);
}

pub struct MyHub;

#[hubs::hub(client = "ChatClient")]
impl MyHub {
    pub fn ping(&self) {}
}

fn main() {}
