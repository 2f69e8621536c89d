pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(name = "Echo2")]
    pub fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {}
