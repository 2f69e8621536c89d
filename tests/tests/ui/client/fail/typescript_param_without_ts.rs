#[derive(serde::Serialize)]
pub struct Point {
    x: f64,
}

#[hubs::client(typescript)]
pub trait ChatClient {
    async fn draw(&self, point: Point);
}

fn main() {}
