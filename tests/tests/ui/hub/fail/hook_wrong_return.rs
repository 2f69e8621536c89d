use hubs::{Context, HubError};

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    fn on_disconnected(&self, cx: &Context<Self>, error: Option<HubError>) -> bool {
        let _ = (cx, error);
        true
    }
}

fn main() {}
