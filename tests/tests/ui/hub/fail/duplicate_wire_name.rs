pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn echo(&self, message: String) -> String {
        message
    }

    #[hub(rename = "ECHO")]
    pub fn shout(&self, message: String) -> String {
        message.to_uppercase()
    }
}

fn main() {}
