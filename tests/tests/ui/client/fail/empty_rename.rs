#[hubs::client]
pub trait Feed {
    #[client(rename = " ")]
    async fn item(&self, item: String);
}

fn main() {}
