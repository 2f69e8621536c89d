use hubs::Stream;

#[derive(Debug)]
pub struct Oops;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn items(&self) -> impl Stream<Item = Result<u32, Oops>> + Send + use<> {
        futures_util::stream::iter([Err(Oops)])
    }
}

fn main() {}
