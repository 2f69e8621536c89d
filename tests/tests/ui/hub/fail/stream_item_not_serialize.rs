use hubs::Stream;

pub struct NotData;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn things(&self) -> impl Stream<Item = NotData> + use<> {
        futures_util::stream::iter([NotData])
    }
}

fn main() {}
