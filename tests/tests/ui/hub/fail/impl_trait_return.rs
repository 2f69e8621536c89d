pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn echo(&self, message: String) -> impl serde::Serialize {
        message
    }
}

fn main() {}
