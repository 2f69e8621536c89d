// With `#[hub(typescript)]`, every payload type must derive ts-rs's `TS`: the error points
// at the type in the signature.
use hubs::hub;

#[derive(serde::Deserialize)]
pub struct Point {
    pub x: f64,
}

pub struct Drawing;

#[hub(typescript)]
impl Drawing {
    pub fn draw(&self, point: Point) -> f64 {
        point.x
    }
}

fn main() {}
