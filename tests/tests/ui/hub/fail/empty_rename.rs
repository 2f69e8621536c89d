pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(rename = "")]
    pub fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {}
