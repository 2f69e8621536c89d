pub struct MyHub;

#[hubs::hub(clients = Foo)]
impl MyHub {
    pub fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {}
