use hubs::Context;

// One mistake in the client trait: the hub that names it still gets its proxy, so the
// only error is the mistake itself.
#[hubs::client]
pub trait Feed {
    fn item(&self, item: String);
}

pub struct FeedHub;

#[hubs::hub(client = Feed)]
impl FeedHub {
    pub async fn publish(&self, cx: &Context<Self>, item: String) {
        let _ = cx.clients().all().recipients().send("Item", (item,)).await;
    }
}

fn main() {}
