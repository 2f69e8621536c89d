//! Every `authorize` and `limit` form builds.

use hubs::Context;

pub struct Open;

#[hubs::hub(authorize(roles = "staff, admin", policy = "on_duty"))]
impl Open {
    #[hub(authorize)]
    pub fn any_user(&self) -> u32 {
        1
    }

    #[hub(authorize(role = "admin", role = "root", policy = "a", policy = "b"))]
    pub fn admins(&self, _cx: &Context<Self>) -> u32 {
        1
    }

    #[hub(limit(rate = "10/s"), limit(concurrency = 2, per = "user"))]
    pub fn limited(&self) -> u32 {
        1
    }

    #[hub(limit(rate = "100/min", burst = 20, per = "user"))]
    #[hub(limit(rate = "1000/h"))]
    pub async fn hourly(&self) -> u32 {
        1
    }
}

fn main() {
    use hubs::Hub;
    assert!(Open::authorization().is_some());
    assert_eq!(Open::methods()[2].limits.len(), 2);
}
