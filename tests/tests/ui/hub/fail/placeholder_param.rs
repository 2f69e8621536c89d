pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn take(&self, value: _) {
        let _ = value;
    }
}

fn main() {}
