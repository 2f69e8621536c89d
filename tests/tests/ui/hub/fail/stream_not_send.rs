use std::rc::Rc;

use hubs::Stream;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn items(&self) -> impl Stream<Item = u32> + use<> {
        let shared = Rc::new(1);
        futures_util::stream::iter([1, 2, 3]).map(move |n| n + *shared)
    }
}

use futures_util::StreamExt;

fn main() {}
