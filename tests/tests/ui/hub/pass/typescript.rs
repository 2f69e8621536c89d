// `#[hub(typescript)]` and `#[client(typescript)]` describe every method shape.
use hubs::{Binary, client, Context, hub, HubError, Stream, UploadStream};
use ts_rs::TS;

#[derive(serde::Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub x_coordinate: f64,
}

#[client(typescript)]
pub trait Member {
    /// Heard.
    async fn said(&self, text: &str, point: Point);
    #[client(rename = "Mood")]
    async fn current_mood(&self) -> Result<Option<String>, HubError>;
}

pub struct Room;

#[hub(client = Member, typescript)]
impl Room {
    pub async fn say(&self, cx: &Context<Self>, text: String, point: Point) {
        let _ = cx.clients().all().said(&text, point).await;
    }
    pub fn bytes(&self) -> Binary {
        Binary::default()
    }
    pub fn count(&self, n: u32) -> impl Stream<Item = Result<u32, HubError>> + use<> {
        futures_util::stream::iter((0..n).map(Ok))
    }
    pub async fn sum(&self, _numbers: UploadStream<u32>) -> Result<u32, HubError> {
        Ok(0)
    }
    pub async fn on_connected(&self) {}
}

fn main() {
    let text = hubs::typescript::Module::new().hub::<Room>().render().unwrap();
    assert!(text.contains("count(n: number): IStreamResult<number>;"));
    assert!(text.contains("mood(): string | null | Promise<string | null>;"));
}
