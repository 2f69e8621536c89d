//! TypeScript for JavaScript clients of hubs, generated from the same description
//! `#[hub]` and `#[client]` build: an interface of the hub's methods, an interface of what
//! the server calls on clients, a typed wrapper over `@microsoft/signalr`'s
//! `HubConnection`, and the declarations of every payload type.
//!
//! Opt in per hub and per client trait with `typescript`, and derive [`TS`] (from
//! [ts-rs](https://docs.rs/ts-rs), which follows serde's `rename`, `rename_all`, `tag`,
//! `flatten`, … ) on the payload types:
//!
//! ```
//! use hubs::{Context, client, hub};
//! use serde::{Deserialize, Serialize};
//! use ts_rs::TS;
//!
//! #[derive(Serialize, Deserialize, TS)]
//! #[serde(rename_all = "camelCase")]
//! pub struct Message {
//!     pub room_name: String,
//!     pub text: String,
//! }
//!
//! #[client(typescript)]
//! pub trait ChatClient {
//!     async fn receive_message(&self, message: Message);
//! }
//!
//! pub struct Chat;
//!
//! #[hub(client = ChatClient, typescript)]
//! impl Chat {
//!     pub async fn send_message(&self, cx: &Context<Self>, message: Message) {
//!         let _ = cx.clients().all().receive_message(message).await;
//!     }
//! }
//!
//! let module = hubs::typescript::Module::new().hub::<Chat>();
//! let text = module.render().unwrap();
//! assert!(text.contains("export type Message = { roomName: string, text: string };"));
//! assert!(text.contains("sendMessage(message: Message): Promise<void>;"));
//! assert!(text.contains("receiveMessage(handler: (message: Message) => void | Promise<void>): () => void;"));
//!
//! // In a test, so the checked-in file cannot drift: writes `web/src/chat.ts` with
//! // `HUBS_TYPESCRIPT=overwrite`, and fails when it is not current otherwise.
//! # let _ = || {
//! module.verify("web/src/chat.ts").unwrap();
//! # };
//! ```
//!
//! The page then uses the generated module:
//!
//! ```ts
//! import { chat } from "./chat.js";
//! const c = chat(new signalR.HubConnectionBuilder().withUrl("/chat").build());
//! c.on.receiveMessage((message) => console.log(message.text));
//! await c.connection.start();
//! await c.hub.sendMessage({ roomName: "rust", text: "hi" });
//! ```
//!
//! # How types map
//!
//! As ts-rs maps them, with 64-bit integers as `number` (what `JSON.parse` and the
//! MessagePack decoder give JavaScript): `Option<T>` is `T | null`, `Vec<T>` is
//! `Array<T>`, maps are index types, enums are unions (tagged as serde tags them),
//! `chrono` dates are ISO strings (ts-rs's `chrono-impl`). [`hubs_core::Binary`] is the
//! alias `Binary`: a base64 `string` in the JSON protocol and a `Uint8Array` in
//! MessagePack ([`Module::protocol`]). Streams are `IStreamResult<T>`, uploads
//! `Subject<T>`, client results `T | Promise<T>`.

mod layout;
mod render;
mod shape;

use std::fmt::Write as _;
use std::path::Path;

pub use shape::{DescribeClient, DescribeHub, Describer, MethodDescriber};
pub use ts_rs::{self, TS};

use render::{ClientText, HubText};
use shape::Types;

/// The environment variable that makes [`Module::verify`] write the file:
/// `HUBS_TYPESCRIPT=overwrite`.
pub const OVERWRITE_VAR: &str = "HUBS_TYPESCRIPT";

/// Which hub protocol the JavaScript client speaks: it decides what [`hubs_core::Binary`]
/// is in TypeScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientProtocols {
    /// JSON (the default): bytes are base64 `string`s.
    #[default]
    Json,
    /// MessagePack: bytes are `Uint8Array`s.
    MessagePack,
    /// Either: `string | Uint8Array`.
    Both,
}

/// Why a module could not be generated, written or verified.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Two different Rust types have the same TypeScript name.
    Collision {
        /// The TypeScript name.
        name: String,
        /// The two Rust types.
        types: [&'static str; 2],
    },
    /// The file does not hold the current module.
    Stale {
        /// The file.
        path: std::path::PathBuf,
    },
    /// Reading or writing the file failed.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Collision { name, types } => write!(
                f,
                "`{}` and `{}` are both `{name}` in TypeScript; rename one (`#[ts(rename = \"…\")]`)",
                types[0], types[1]
            ),
            Self::Stale { path } => write!(
                f,
                "{} is not current: regenerate it with {OVERWRITE_VAR}=overwrite",
                path.display()
            ),
            Self::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// One TypeScript module: the hubs added to it, their clients, and every type they use.
///
/// ```
/// # use hubs_typescript::{Describer, DescribeHub, Module};
/// # struct Echo;
/// # impl DescribeHub for Echo {
/// #     type Client = hubs_core::Untyped;
/// #     const NAME: &'static str = "Echo";
/// #     fn describe(hub: &mut Describer<'_>) {
/// #         hub.method("Echo").param::<String>("text").returns::<String>();
/// #     }
/// # }
/// // `Echo` is a `#[hub(typescript)]`.
/// let text = Module::new().hub::<Echo>().render().unwrap();
/// assert!(text.contains("echo(text: string): Promise<string>;"));
/// assert!(text.contains(r#"echo: (text) => connection.invoke("Echo", text),"#));
/// ```
pub struct Module {
    types: Types,
    hubs: Vec<HubText>,
    clients: Vec<ClientText>,
    protocol: ClientProtocols,
}

impl Default for Module {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field(
                "hubs",
                &self.hubs.iter().map(|h| &h.name).collect::<Vec<_>>(),
            )
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// An empty module, for the JSON protocol.
    pub fn new() -> Self {
        Self {
            types: Types::new(),
            hubs: Vec::new(),
            clients: Vec::new(),
            protocol: ClientProtocols::Json,
        }
    }

    /// The protocol the page's client uses (JSON by default): what bytes are.
    #[must_use]
    pub fn protocol(mut self, protocol: ClientProtocols) -> Self {
        self.protocol = protocol;
        self
    }

    /// Adds a hub (`#[hub(typescript)]`) and its client interface.
    #[must_use]
    pub fn hub<H: DescribeHub>(mut self) -> Self {
        let mut describer = Describer::new(&mut self.types);
        H::describe(&mut describer);
        let methods = describer.finish();
        let client = (!<H::Client as DescribeClient>::NAME.is_empty())
            .then(|| <H::Client as DescribeClient>::NAME.to_owned());
        if let Some(name) = &client
            && !self.clients.iter().any(|c| &c.name == name)
        {
            let mut describer = Describer::new(&mut self.types);
            <H::Client as DescribeClient>::describe(&mut describer);
            self.clients.push(ClientText {
                name: name.clone(),
                methods: describer.finish(),
            });
        }
        if !self.hubs.iter().any(|h| h.name == H::NAME) {
            self.hubs.push(HubText {
                name: H::NAME.to_owned(),
                methods,
                client,
            });
        }
        self
    }

    /// The module's text.
    ///
    /// # Errors
    ///
    /// [`Error::Collision`] when two types have the same TypeScript name.
    pub fn render(&self) -> Result<String, Error> {
        let mut declarations = self.types.declarations.clone();
        declarations.sort_by(|a, b| a.name.cmp(&b.name));
        declarations.dedup_by(|b, a| a.name == b.name && a.text == b.text);
        if let Some(pair) = declarations.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::Collision {
                name: pair[0].name.clone(),
                types: [pair[0].rust, pair[1].rust],
            });
        }

        let mut out = String::new();
        out.push_str(
            "// Generated by hubs from `#[hub]` and `#[client]`: do not edit. Regenerate with\n\
             // HUBS_TYPESCRIPT=overwrite and the test that calls `Module::verify`.\n\n",
        );
        let (streams, uploads) = render::uses(&self.hubs);
        let mut imports = vec!["HubConnection"];
        if streams {
            imports.push("IStreamResult");
        }
        if uploads {
            imports.push("Subject");
        }
        let _ = writeln!(
            out,
            "import type {{ {} }} from \"@microsoft/signalr\";\n",
            imports.join(", ")
        );
        if self.types.binary {
            let (ty, how) = match self.protocol {
                ClientProtocols::Json => {
                    ("string", "base64 text, as the JSON protocol carries bytes")
                }
                ClientProtocols::MessagePack => {
                    ("Uint8Array", "as the MessagePack protocol carries them")
                }
                ClientProtocols::Both => (
                    "string | Uint8Array",
                    "base64 text in JSON, a `Uint8Array` in MessagePack",
                ),
            };
            let _ = writeln!(out, "/** Bytes: {how}. */\nexport type Binary = {ty};\n");
        }
        for declaration in &declarations {
            render::declaration(&mut out, &declaration.text);
        }
        for client in &self.clients {
            render::client(&mut out, client);
        }
        for hub in &self.hubs {
            render::hub(&mut out, hub);
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
        Ok(out)
    }

    /// Writes the module to `path` (its directory must exist), unless it already holds it.
    ///
    /// # Errors
    ///
    /// As [`render`](Self::render), or when the file cannot be written.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let text = self.render()?;
        if std::fs::read_to_string(path.as_ref()).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text)?;
        }
        Ok(())
    }

    /// Checks that `path` holds the current module; with `HUBS_TYPESCRIPT=overwrite` in
    /// the environment it writes the module instead (as trybuild's `TRYBUILD=overwrite`).
    /// Call it from a test, so the checked-in file cannot drift from the hubs.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`] when the file differs (or is missing), and as [`write`](Self::write).
    pub fn verify(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        if std::env::var(OVERWRITE_VAR).is_ok_and(|v| v == "overwrite") {
            return self.write(path);
        }
        let text = self.render()?;
        if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
            Ok(())
        } else {
            Err(Error::Stale {
                path: path.to_owned(),
            })
        }
    }
}
