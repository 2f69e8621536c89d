pub struct NotData;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn take(&self, value: NotData) {
        let _ = value;
    }
}

fn main() {}
