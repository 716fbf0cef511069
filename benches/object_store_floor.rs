//! The object store's floor, for `benches/object_store.sh`: the files of a
//! local snapshot uploaded with plain multipart PUTs, or every object under
//! a prefix read with plain GETs and thrown away, by `object_store` itself —
//! the library vecport uses, so that what separates vecport from this floor
//! is vecport's own work (encoding, hashing, pipelining), not another HTTP
//! stack.
//!
//! ```text
//! cargo run --release --example object_store_floor -- put DIR s3://BUCKET/PREFIX [CONCURRENCY] [CHUNK_MIB]
//! cargo run --release --example object_store_floor -- get s3://BUCKET/PREFIX [CONCURRENCY]
//! ```
//!
//! `put` uploads one file at a time, each in `CHUNK_MIB` pieces (default 10)
//! with up to `CONCURRENCY` pieces in flight (default 4); `get` reads up to
//! `CONCURRENCY` objects at once. Configuration comes from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, …) as `AmazonS3Builder::from_env` reads it. Prints one
//! line: objects, bytes, seconds, MB/s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The store and the prefix of `s3://BUCKET/PREFIX`.
fn open(url: &str) -> Result<(Box<dyn ObjectStore>, ObjectPath)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3://BUCKET/PREFIX URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    Ok((Box::new(store), ObjectPath::from(prefix)))
}

async fn put(dir: &Path, url: &str, concurrency: usize, chunk: usize) -> Result<(usize, u64)> {
    let (store, prefix) = open(url)?;
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    files.sort();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for file in &files {
        let relative = file.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
        let location = ObjectPath::from(format!("{prefix}/{relative}"));
        let upload = store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, chunk);
        let mut f = tokio::fs::File::open(file).await?;
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(concurrency).await?;
            writer.write(&buf[..n]);
            bytes += n as u64;
        }
        writer.finish().await?;
    }
    Ok((files.len(), bytes))
}

async fn get(url: &str, concurrency: usize) -> Result<(usize, u64)> {
    let (store, prefix) = open(url)?;
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let store = &store;
    let sizes: Vec<u64> = futures::stream::iter(objects.iter().map(|o| async move {
        let mut stream = store.get(&o.location).await?.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk?.len() as u64;
        }
        Ok::<_, object_store::Error>(n)
    }))
    .buffer_unordered(concurrency)
    .try_collect()
    .await?;
    Ok((objects.len(), sizes.iter().sum()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> Result<usize> {
        Ok(args
            .get(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let started = Instant::now();
    let (objects, bytes) = match args.first().map(String::as_str) {
        Some("put") if args.len() >= 3 => {
            let dir = PathBuf::from(&args[1]);
            put(&dir, &args[2], number(3, 4)?, number(4, 10)? << 20).await?
        }
        Some("get") if args.len() >= 2 => get(&args[1], number(2, 4)?).await?,
        _ => {
            return Err("usage: object_store_floor put DIR s3://BUCKET/PREFIX [CONCURRENCY] [CHUNK_MIB] | get s3://BUCKET/PREFIX [CONCURRENCY]".into());
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{objects} objects, {bytes} bytes, {secs:.2} s, {:.1} MB/s",
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
