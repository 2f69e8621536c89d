pub struct MyHub<T>(T);

#[hubs::hub]
impl<T: Send + Sync + 'static> MyHub<T> {
    pub fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {}
