use futures_util::StreamExt;
use hubs::{CancellationToken, Context, hub, HubError, Stream, UploadStream};

#[derive(Debug)]
pub struct Oops;
impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

pub struct Streams;

#[hub]
impl Streams {
    pub fn counter(&self, to: u32) -> impl Stream<Item = u32> + use<> {
        futures_util::stream::iter(0..to)
    }
    pub fn fallible(&self) -> impl hubs::Stream<Item = Result<String, Oops>> + use<> {
        futures_util::stream::iter([Ok("a".to_owned()), Err(Oops)])
    }
    pub fn maybe(&self, ok: bool) -> Result<impl Stream<Item = u8> + use<>, HubError> {
        if ok { Ok(futures_util::stream::iter([1u8])) } else { Err(HubError::new("no")) }
    }
    pub async fn channel(&self, cx: &Context<Self>) -> tokio::sync::mpsc::Receiver<String> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let id = cx.connection_id().to_string();
        tokio::spawn(async move {
            let _ = tx.send(id).await;
        });
        rx
    }
    pub fn watch(&self, cancel: CancellationToken) -> impl Stream<Item = ()> + use<> {
        futures_util::stream::once(async move { cancel.cancelled().await })
    }
    pub async fn upload(&self, mut parts: UploadStream<String>, separator: String) -> Result<String, HubError> {
        let mut out = Vec::new();
        while let Some(part) = parts.next().await {
            out.push(part?);
        }
        Ok(out.join(&separator))
    }
    pub fn both(&self, a: UploadStream<u32>, b: UploadStream<u32>) -> impl Stream<Item = u32> + use<> {
        a.chain(b).filter_map(|n| async move { n.ok() })
    }
}

fn main() {
    fn is_hub<H: hubs::Hub>() {}
    is_hub::<Streams>();
}
