use hubs::Context;

#[derive(Debug)]
pub struct Refused;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected(&self, cx: &Context<Self>) -> Result<(), Refused> {
        let _ = cx;
        Err(Refused)
    }
}

fn main() {}
