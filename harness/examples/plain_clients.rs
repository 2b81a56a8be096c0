//! The baseline for "the harness must not be the bottleneck": a plain client loop doing what a
//! `rate: max` workload does — keyed sends, a bounded window of unacknowledged sends, acks=all /
//! publisher confirms, optionally a consumer reading concurrently — with none of the harness
//! around it.
//!
//!   cargo run --release --example plain_clients -- kafka 20 512 10000 5 0
//!   cargo run --release --example plain_clients -- rabbitmq 20 512 1000 1 1
//! (broker, seconds, message bytes, max in flight, Kafka's linger.ms, consumers: 0 or 1).
//! Prints acknowledged messages per second.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

/// Acknowledged sends, and the time from the first send to the last acknowledgement: the same
/// interval brokerbench's throughput is measured over (setup and teardown are not in it).
type Measured = (u64, Duration);

/// What one run does: the same for both brokers.
struct Shape {
    secs: u64,
    size: usize,
    window: usize,
    /// Kafka's linger.ms (RabbitMQ has no equivalent: each publish goes out at once).
    linger_ms: u64,
    /// Whether a consumer reads while the producer sends.
    consume: bool,
}

async fn kafka(shape: &Shape) -> anyhow::Result<Measured> {
    let &Shape {
        secs,
        size,
        window,
        linger_ms,
        consume,
    } = shape;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = format!("plain-{}", std::process::id());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", "127.0.0.1:9092");
    let admin: AdminClient<_> = cfg.create()?;
    admin
        .create_topics(
            [&NewTopic::new(&topic, 6, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    let consumer: std::sync::Arc<StreamConsumer> = cfg
        .clone()
        .set("group.id", &topic)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "2000")
        .set("max.poll.interval.ms", "12000")
        .create::<StreamConsumer>()?
        .into();
    let reader = if consume {
        consumer.subscribe(&[&topic])?;
        let reading = consumer.clone();
        Some(tokio::spawn(async move {
            loop {
                let _ = reading.recv().await;
            }
        }))
    } else {
        None
    };
    // Like brokerbench, start sending once the consumer has its partitions.
    let joined = Instant::now();
    while consume && consumer.assignment()?.count() == 0 {
        anyhow::ensure!(
            joined.elapsed() < Duration::from_secs(30),
            "consumer got no partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let producer: FutureProducer = cfg
        .clone()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let body = vec![b'x'; size];
    let (mut acked, mut in_flight, mut i) = (0u64, FuturesUnordered::new(), 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        while in_flight.len() >= window {
            if let Some(Ok(Ok(_))) = in_flight.next().await {
                acked += 1;
            }
        }
        let key = format!("k{}", i % 1000);
        i += 1;
        match producer.send_result(FutureRecord::to(&topic).key(&key).payload(&body)) {
            Ok(f) => in_flight.push(f),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    while let Some(r) = in_flight.next().await {
        if let Ok(Ok(_)) = r {
            acked += 1;
        }
    }
    let elapsed = start.elapsed();
    if let Some(reader) = reader {
        reader.abort();
        // Close the consumer here, not in the runtime's shutdown (librdkafka crashed there).
        let _ = reader.await;
    }
    drop(consumer);
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    Ok((acked, elapsed))
}

async fn rabbitmq(shape: &Shape) -> anyhow::Result<Measured> {
    let &Shape {
        secs,
        size,
        window,
        consume,
        ..
    } = shape;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let queue = format!("plain-{}", std::process::id());
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let cconn = Connection::connect(url, ConnectionProperties::default()).await?;
    let reader = if consume {
        let cch = cconn.create_channel().await?;
        let mut consumer = cch
            .basic_consume(
                queue.as_str().into(),
                "plain".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Some(tokio::spawn(async move {
            while consumer.next().await.is_some() {}
        }))
    } else {
        None
    };
    let body = vec![b'x'; size];
    let (mut acked, mut in_flight) = (0u64, FuturesUnordered::new());
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        while in_flight.len() >= window {
            if let Some(Ok(c)) = in_flight.next().await {
                acked += lapin::Confirmation::is_ack(&c) as u64;
            }
        }
        let props = BasicProperties::default().with_delivery_mode(2);
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        in_flight.push(confirm.boxed());
    }
    while let Some(r) = in_flight.next().await {
        if let Ok(c) = r {
            acked += c.is_ack() as u64;
        }
    }
    let elapsed = start.elapsed();
    if let Some(reader) = reader {
        reader.abort();
    }
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    Ok((acked, elapsed))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let broker = args.get(1).map(String::as_str).unwrap_or("kafka");
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        match args.get(i) {
            None => Ok(default),
            Some(a) => a
                .parse()
                .map_err(|e| anyhow::anyhow!("argument {i} ({a:?}): {e}")),
        }
    };
    let shape = Shape {
        secs: arg(2, 20)?,
        size: arg(3, 512)? as usize,
        window: arg(4, 1000)? as usize,
        linger_ms: arg(5, 1)?,
        consume: arg(6, 1)? != 0,
    };
    let (acked, elapsed) = match broker {
        "kafka" => kafka(&shape).await?,
        "rabbitmq" => rabbitmq(&shape).await?,
        other => anyhow::bail!("unknown broker {other} (kafka or rabbitmq)"),
    };
    println!(
        "plain {broker}: acked={acked} msg/s={:.0}",
        acked as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
