#[derive(serde::Serialize)]
pub struct Point {
    x: f64,
}

pub struct Drawing;

#[hubs::hub(typescript)]
impl Drawing {
    pub fn origin(&self) -> Point {
        Point { x: 0.0 }
    }
}

fn main() {}
