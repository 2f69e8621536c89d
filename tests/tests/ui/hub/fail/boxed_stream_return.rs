use std::pin::Pin;

use hubs::Stream;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn items(&self) -> Pin<Box<dyn Stream<Item = u32> + Send>> {
        Box::pin(futures_util::stream::iter([1, 2, 3]))
    }
}

fn main() {}
