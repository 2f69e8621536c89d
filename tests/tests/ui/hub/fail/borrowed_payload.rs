pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn echo(&self, message: &str) -> String {
        message.to_owned()
    }
}

fn main() {}
