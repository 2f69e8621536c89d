//! The streams of one connection, by id: downloads (to cancel them) and uploads (to feed
//! them). Entries are added when an invocation is read and removed by the invocation's
//! owner (the dispatch floor's `InvocationGuard`) when it completes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::base::stream::{Pushed, UploadBudget, UploadReceiver, UploadSender, upload};
use hubs_protocol::Value;

#[derive(Debug)]
pub(crate) struct Streams {
    downloads: Mutex<HashMap<String, CancellationToken>>,
    uploads: Mutex<HashMap<String, UploadSender>>,
    /// Whether `uploads` has entries (read without the lock on every turn of the reader).
    any_uploads: std::sync::atomic::AtomicBool,
    budget: Arc<UploadBudget>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Streams {
    pub(crate) fn new(budget: Arc<UploadBudget>) -> Self {
        Self {
            downloads: Mutex::default(),
            uploads: Mutex::default(),
            any_uploads: std::sync::atomic::AtomicBool::new(false),
            budget,
        }
    }

    /// Registers a download; `false` if the id is in use.
    pub(crate) fn start_download(&self, id: &str, token: CancellationToken) -> bool {
        let mut downloads = lock(&self.downloads);
        if downloads.contains_key(id) {
            return false;
        }
        downloads.insert(id.to_owned(), token);
        true
    }

    /// Cancels a download; `false` if there is none with that id.
    pub(crate) fn cancel_download(&self, id: &str) -> bool {
        match lock(&self.downloads).get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn end_download(&self, id: &str) {
        lock(&self.downloads).remove(id);
    }

    /// Opens uploads for `ids`; `Err(id)` with an id that is in use (or repeated).
    pub(crate) fn open_uploads(
        &self,
        ids: &[String],
    ) -> Result<Vec<(UploadSender, UploadReceiver)>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut uploads = lock(&self.uploads);
        if let Some((_, in_use)) = ids
            .iter()
            .enumerate()
            .find(|(i, id)| ids[..*i].contains(id) || uploads.contains_key(*id))
        {
            return Err(in_use.clone());
        }
        let opened = ids
            .iter()
            .map(|id| {
                let (tx, rx) = upload(self.budget.clone());
                uploads.insert(id.clone(), tx.clone());
                (tx, rx)
            })
            .collect();
        self.note(&uploads);
        Ok(opened)
    }

    /// Feeds upload `id`; never waits. `None` when no such upload is open.
    pub(crate) fn push(&self, id: &str, value: Value) -> Option<Pushed> {
        let upload = lock(&self.uploads).get(id).cloned()?;
        Some(upload.push(id, value))
    }

    /// The client completed upload `id` (with an error, or not); `false` when no such
    /// upload is open.
    pub(crate) fn complete_upload(&self, id: &str, error: Option<String>) -> bool {
        let mut uploads = lock(&self.uploads);
        let removed = uploads.remove(id);
        self.note(&uploads);
        drop(uploads);
        match removed {
            Some(upload) => {
                upload.finish(error);
                true
            }
            None => false,
        }
    }

    /// Forgets uploads whose method has ended (unless the client completed one and
    /// reused its id since); later items are ignored.
    pub(crate) fn end_uploads(&self, ended: &[(String, UploadSender)]) {
        if ended.is_empty() {
            return;
        }
        let mut uploads = lock(&self.uploads);
        for (id, upload) in ended {
            if uploads.get(id).is_some_and(|current| current.same(upload)) {
                uploads.remove(id);
            }
        }
        self.note(&uploads);
        drop(uploads);
        // A consumer that outlives its invocation (moved to a task of its own) learns
        // that no more items come.
        for (_, upload) in ended {
            upload.finish(Some(
                hubs_protocol::wire::UPLOAD_INVOCATION_ENDED.to_owned(),
            ));
        }
    }

    fn note(&self, uploads: &HashMap<String, UploadSender>) {
        self.any_uploads
            .store(!uploads.is_empty(), std::sync::atomic::Ordering::Release);
    }

    /// The first upload the reader should wait for (see [`UploadSender::congested`]).
    pub(crate) fn congested(&self) -> Option<UploadSender> {
        if !self.any_uploads.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        lock(&self.uploads)
            .values()
            .find(|upload| upload.congested())
            .cloned()
    }

    /// The connection ended: cancel every download and fail every open upload.
    pub(crate) fn close(&self) {
        for (_, token) in lock(&self.downloads).drain() {
            token.cancel();
        }
        let drained: Vec<UploadSender> = {
            let mut uploads = lock(&self.uploads);
            let drained = uploads.drain().map(|(_, upload)| upload).collect();
            self.note(&uploads);
            drained
        };
        for upload in drained {
            upload.finish(Some(
                hubs_protocol::wire::UPLOAD_CONNECTION_ENDED.to_owned(),
            ));
        }
    }
}
