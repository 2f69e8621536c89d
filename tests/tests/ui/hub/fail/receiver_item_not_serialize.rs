use tokio::sync::mpsc::Receiver;

pub struct NotData;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn items(&self) -> Receiver<NotData> {
        tokio::sync::mpsc::channel(1).1
    }
}

fn main() {}
