#[hubs::client]
pub trait ChatClient {
    fn receive_message(&self, text: String);
}

fn main() {}
