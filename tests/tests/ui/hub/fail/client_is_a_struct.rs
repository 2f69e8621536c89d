pub struct ChatClient;

pub struct MyHub;

#[hubs::hub(client = ChatClient)]
impl MyHub {
    pub fn ping(&self) {}
}

fn main() {}
