pub struct MyHub;

#[hubs::hub]
impl Default for MyHub {
    fn default() -> Self {
        MyHub
    }
}

fn main() {}
