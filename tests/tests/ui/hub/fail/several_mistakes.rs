pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn first(self) {}
    pub fn second<T>(&self) {}
    pub fn third(&self, text: &str) {
        let _ = text;
    }
}

fn main() {}
