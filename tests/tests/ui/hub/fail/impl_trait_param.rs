pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn echo(&self, message: impl Into<String>) -> String {
        message.into()
    }
}

fn main() {}
