use hubs::{Context, hub};

/// A trait without `#[client]`.
pub trait Plain {
    fn notify(&self, text: String);
}

pub struct Alerts;

#[hub(client = Plain)]
impl Alerts {
    pub async fn alert(&self, cx: &Context<Self>, text: String) {
        let _ = (cx, text);
    }
}

fn main() {}
