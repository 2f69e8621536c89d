#[hubs::client]
pub trait Feed<T> {
    async fn item(&self, item: String);
}

fn main() {}
