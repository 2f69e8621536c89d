pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(rename = "A", rename = "B")]
    pub fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {}
