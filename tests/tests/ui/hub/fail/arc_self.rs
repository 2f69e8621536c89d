use std::sync::Arc;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn ping(self: Arc<Self>) {}
}

fn main() {}
