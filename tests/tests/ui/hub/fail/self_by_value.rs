pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn echo(self, message: String) -> String {
        message
    }
}

fn main() {}
