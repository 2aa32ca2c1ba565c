//! Decoder throughput, in readings per second, for each payload format.
//!
//! Sizes: a single reading is what a wearable sends each minute; 10 readings
//! is a blood-pressure cuff or a gateway's normal batch; 100 is a gateway
//! flushing after an hour offline.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use thuiswacht::decode::{decode, DecodeContext};
use thuiswacht::domain::{DeviceId, Timestamp};

fn v1(count: usize) -> Bytes {
    let readings: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"metric":"heart_rate","value":{},"unit":"/min","ts":"2026-11-22T07:{:02}:{:02}Z"}}"#,
                60 + i % 40,
                (i / 60) % 60,
                i % 60
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"device_id":"wear-1","seq":1,"readings":[{}]}}"#,
        readings.join(",")
    ))
}

fn senml(count: usize) -> Bytes {
    let mut records = vec![format!(
        r#"{{"bn":"wear-1/","bt":1763796665,"bu":"beat/min","n":"heart_rate","v":60}}"#
    )];
    for i in 1..count {
        records.push(format!(
            r#"{{"n":"heart_rate","t":{i},"v":{}}}"#,
            60 + i % 40
        ));
    }
    Bytes::from(format!("[{}]", records.join(",")))
}

fn fhir(count: usize) -> Bytes {
    let observation = |i: usize| {
        format!(
            r#"{{"resourceType":"Observation","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],
            "code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}}]}},
            "subject":{{"reference":"Patient/example"}},"device":{{"reference":"Device/wear-1"}},
            "effectiveDateTime":"2026-11-22T07:{:02}:{:02}Z",
            "valueQuantity":{{"value":{},"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}}}"#,
            (i / 60) % 60,
            i % 60,
            60 + i % 40
        )
    };
    if count == 1 {
        return Bytes::from(observation(0));
    }
    let entries: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"resource":{}}}"#, observation(i)))
        .collect();
    Bytes::from(format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
        entries.join(",")
    ))
}

fn bench_decoders(c: &mut Criterion) {
    let device = DeviceId::parse("wear-1").unwrap();
    let context = DecodeContext {
        topic_device: Some(&device),
        received_at: Timestamp::now(),
        max_payload_bytes: 256 * 1024,
    };
    let mut group = c.benchmark_group("decode");
    for (format, build) in [
        ("thuiswacht_v1", v1 as fn(usize) -> Bytes),
        ("senml", senml),
        ("fhir", fhir),
    ] {
        for count in [1_usize, 10, 100] {
            let payload = build(count);
            let check = decode(&payload, &context);
            assert_eq!(
                check.readings.len(),
                count,
                "{format} payload decodes fully"
            );
            group.throughput(Throughput::Elements(count as u64));
            group.bench_function(format!("{format}_batch_{count}"), |b| {
                b.iter_batched(
                    || payload.clone(),
                    |payload| decode(&payload, &context),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_decoders);
criterion_main!(benches);
