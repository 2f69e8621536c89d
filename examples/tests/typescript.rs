//! The TypeScript the examples' pages import is generated from their hubs: these tests fail
//! when a checked-in module drifts from its hub, when the page does not type-check against
//! it (`tsc --noEmit`, the pinned TypeScript of examples/chat), and when a wrong call gets
//! through. Regenerate the modules with
//! `HUBS_TYPESCRIPT=overwrite cargo test -p hubs-examples --test typescript`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use hubs::{Binary, Context, HubError, Stream, UploadStream, client, hub};
use hubs_examples::chat;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

fn tsc() -> PathBuf {
    let tsc = chat::page_dir().join("node_modules/.bin/tsc");
    assert!(
        tsc.is_file(),
        "TypeScript is not installed at {}: run `bash scripts/test` (npm ci in examples/chat)",
        tsc.display()
    );
    tsc
}

/// Runs `tsc` with `args`: whether it passed, and what it printed.
fn run_tsc(args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new("node")
        .arg(tsc())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_chat_module_is_current() {
    let path = chat::page_dir().join("src/generated/chat.ts");
    if let Err(error) = chat::typescript().verify(&path) {
        panic!("{error}");
    }
}

#[test]
fn the_chat_page_type_checks_against_the_hub() {
    let (ok, output) = run_tsc(&["-p", ".", "--noEmit"], &chat::page_dir());
    assert!(ok, "tsc --noEmit failed on the chat page:\n{output}");
}

/// A scratch directory for TypeScript files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hubs-ts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates a scratch directory");
        Self(dir)
    }

    /// A `tsconfig.json` as strict as the page's, for `files`, resolving
    /// `@microsoft/signalr` from the page's `node_modules`.
    fn tsconfig(&self, files: &[&str]) {
        let signalr = chat::page_dir().join("node_modules/@microsoft/signalr");
        let config = serde_json::json!({
            "compilerOptions": {
                "target": "ES2022",
                "module": "ES2022",
                "moduleResolution": "Bundler",
                "lib": ["ES2022", "DOM"],
                "strict": true,
                "noUnusedLocals": true,
                "noEmit": true,
                "skipLibCheck": true,
                "paths": { "@microsoft/signalr": [signalr.to_string_lossy()] }
            },
            "files": files,
        });
        self.write("tsconfig.json", &config.to_string());
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("writes");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_wrong_call_on_the_page_fails_tsc() {
    let scratch = Scratch::new("wrong");
    scratch.write("chat.ts", &chat::typescript().render().expect("renders"));
    scratch.write(
        "page.ts",
        r#"import type { HubConnection } from "@microsoft/signalr";
import { chatHub } from "./chat.js";
declare const connection: HubConnection;
const chat = chatHub(connection);
void chat.hub.sendMessage("rust");
void chat.hub.sendMesage("rust", "hello");
chat.on.ask(() => 42);
chat.on.receiveMessage((message) => message.sent_at);
void chat.hub.joinRoom("rust").then((members) => members.members.push(1));
"#,
    );
    scratch.tsconfig(&["page.ts"]);
    let (ok, output) = run_tsc(&["-p", "."], &scratch.0);
    assert!(!ok, "tsc accepted wrong calls:\n{output}");
    // Each wrong line fails, and nothing else does.
    for line in 5..=9 {
        assert!(
            output.contains(&format!("page.ts({line},")),
            "line {line} of page.ts was not reported:\n{output}"
        );
    }
    assert_eq!(output.matches("error TS").count(), 5, "{output}");
}

// A hub with every shape a method can have, to check that its module compiles and says
// what it should.

/// A point.
#[derive(Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Across.
    pub x_coordinate: f64,
    /// Down.
    pub y_coordinate: f64,
    /// An optional label.
    pub label: Option<String>,
}

/// A shape, tagged as serde tags it.
#[derive(Serialize, Deserialize, TS)]
#[serde(tag = "type")]
pub enum Shape {
    /// A circle.
    Circle {
        /// Its center.
        center: Point,
        /// Its radius.
        radius: f64,
    },
    /// A polygon.
    Polygon {
        /// Its corners.
        points: Vec<Point>,
    },
}

/// A level, as a string union.
#[derive(Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Low.
    Low,
    /// High.
    High,
}

/// What the drawing hub calls.
#[client(typescript)]
pub trait DrawingClient {
    /// Someone drew a shape.
    async fn drawn(&self, shape: Shape, by: &str);
    /// A client result: the client's level.
    async fn level(&self) -> Result<Level, HubError>;
}

/// A hub with a method of every shape.
pub struct Drawing;

#[hub(client = DrawingClient, typescript)]
impl Drawing {
    /// Draws a shape for everyone.
    pub async fn draw(&self, cx: &Context<Self>, shape: Shape) -> Result<(), HubError> {
        cx.clients().others().drawn(shape, "someone").await?;
        Ok(())
    }

    /// Counts shapes by type.
    pub fn tally(&self, shapes: Vec<Shape>) -> HashMap<String, u64> {
        let mut tally = HashMap::new();
        for shape in shapes {
            let key = match shape {
                Shape::Circle { .. } => "circle",
                Shape::Polygon { .. } => "polygon",
            };
            *tally.entry(key.to_owned()).or_default() += 1;
        }
        tally
    }

    /// A thumbnail, as bytes.
    pub fn thumbnail(&self, size: u32) -> Binary {
        Binary(vec![0; size as usize])
    }

    /// Streams points along a line.
    pub fn trace(&self, steps: u32) -> impl Stream<Item = Point> + use<> {
        futures_util::stream::iter((0..steps).map(|i| Point {
            x_coordinate: f64::from(i),
            y_coordinate: 0.0,
            label: None,
        }))
    }

    /// Receives points and counts them.
    pub async fn upload_points(&self, mut points: UploadStream<Point>) -> Result<usize, HubError> {
        let mut count = 0;
        while let Some(point) = points.next().await {
            point?;
            count += 1;
        }
        Ok(count)
    }

    /// Renamed on the wire.
    #[hub(rename = "Clear")]
    pub fn clear_everything(&self, r#default: bool) -> bool {
        r#default
    }
}

#[test]
fn every_method_shape_renders_and_compiles() {
    let json = hubs::typescript::Module::new().hub::<Drawing>();
    let text = json.render().expect("renders");
    for expected in [
        "import type { HubConnection, IStreamResult, Subject } from \"@microsoft/signalr\";",
        "export type Binary = string;",
        "export type Level = \"low\" | \"high\";",
        "  xCoordinate: number,",
        "  label: string | null,",
        "draw(shape: Shape): Promise<void>;",
        "tally(shapes: Array<Shape>): Promise<{ [key in string]: number }>;",
        "thumbnail(size: number): Promise<Binary>;",
        "trace(steps: number): IStreamResult<Point>;",
        "uploadPoints(points: Subject<Point>): Promise<number>;",
        "clear(default_: boolean): Promise<boolean>;",
        "clear: (default_) => connection.invoke(\"Clear\", default_),",
        "trace: (steps) => connection.stream(\"Trace\", steps),",
        "drawn(shape: Shape, by: string): void | Promise<void>;",
        "level(): Level | Promise<Level>;",
        "/** Someone drew a shape. */",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // Streams have no `send`.
    assert!(
        !text.contains("trace(steps: number): Promise<void>;"),
        "{text}"
    );
    let msgpack = hubs::typescript::Module::new()
        .protocol(hubs::typescript::ClientProtocols::MessagePack)
        .hub::<Drawing>()
        .render()
        .expect("renders");
    assert!(msgpack.contains("export type Binary = Uint8Array;"));

    let scratch = Scratch::new("drawing");
    scratch.write("drawing.ts", &text);
    scratch.write(
        "use.ts",
        r#"import type { HubConnection } from "@microsoft/signalr";
import { Subject } from "@microsoft/signalr";
import { drawing, type Point } from "./drawing.js";
declare const connection: HubConnection;
const d = drawing(connection);
export async function use(): Promise<number> {
  await d.hub.draw({ type: "Circle", center: { xCoordinate: 1, yCoordinate: 2, label: null }, radius: 3 });
  const tally: { [key in string]?: number } = await d.hub.tally([]);
  const thumbnail: string = await d.hub.thumbnail(4);
  d.hub.trace(3).subscribe({ next: (p: Point) => void p.xCoordinate, error: () => {}, complete: () => {} });
  const points = new Subject<Point>();
  const count: Promise<number> = d.hub.uploadPoints(points);
  points.next({ xCoordinate: 0, yCoordinate: 0, label: "origin" });
  points.complete();
  const off = d.on.level(async () => "high" as const);
  d.on.drawn((shape, by) => void [shape.type, by.length]);
  off();
  await d.send.clear(true);
  return (await count) + thumbnail.length + Object.keys(tally).length;
}
"#,
    );
    scratch.tsconfig(&["use.ts"]);
    let (ok, output) = run_tsc(&["-p", "."], &scratch.0);
    assert!(
        ok,
        "the generated module does not compile:\n{output}\n{text}"
    );
}
