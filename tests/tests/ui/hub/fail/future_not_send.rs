use std::rc::Rc;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub async fn count(&self) -> u32 {
        let shared = Rc::new(1);
        tokio::task::yield_now().await;
        *shared
    }
}

fn main() {}
