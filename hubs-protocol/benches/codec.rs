//! Encode and decode throughput of both hub protocols.
//!
//! `cargo bench -p hubs-core --bench codec`

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hubs_protocol::{HubMessage, Invocation, Protocol, Value};

fn invocation(protocol: Protocol, payload: usize) -> HubMessage {
    HubMessage::Invocation(Invocation {
        invocation_id: Some("42".into()),
        target: "SendMessage".into(),
        arguments: vec![
            Value::serialize(protocol, "ann").expect("serializes"),
            Value::serialize(protocol, &"x".repeat(payload)).expect("serializes"),
        ],
        ..Default::default()
    })
}

fn codec(c: &mut Criterion) {
    for protocol in Protocol::ALL {
        for (name, payload) in [("small", 5), ("1KiB", 1024), ("16KiB", 16 * 1024)] {
            let message = invocation(protocol, payload);
            let mut frame = Vec::new();
            protocol.encode(&message, &mut frame).expect("encodes");

            let mut group = c.benchmark_group(format!("{protocol}/{name}"));
            group.throughput(Throughput::Bytes(frame.len() as u64));
            let mut out = Vec::with_capacity(frame.len());
            group.bench_function("encode", |b| {
                b.iter(|| {
                    out.clear();
                    protocol
                        .encode(black_box(&message), &mut out)
                        .expect("encodes");
                    black_box(out.len())
                })
            });
            let mut decoder = protocol.decoder().with_max_message_size(None);
            group.bench_function("decode", |b| {
                b.iter(|| {
                    decoder.push(black_box(&frame));
                    black_box(decoder.next_message().expect("decodes"))
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
