//! The file a part is written into: bytes are gathered into large blocks,
//! which one thread hashes (BLAKE3) and a second writes, so neither hashing
//! nor the `write` calls hold up encoding.
//!
//! The bytes go to a local file or, for a snapshot in object storage, into a
//! multipart upload ([`Destination`]).
//!
//! On Linux the blocks go to the disk with direct I/O where the filesystem
//! takes it: a snapshot of a billion vectors passes through the page cache
//! neither evicting what the machine had cached nor costing a copy per byte.
//! Every block but the last is a multiple of the alignment direct I/O asks
//! for; the last, and everything on filesystems that refuse direct I/O, is
//! written through the page cache as usual.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use crate::storage::Upload;

/// Bytes handed from [`HashingFile`] to its threads at a time.
const BLOCK: usize = 4 << 20;

/// Alignment of memory, file offsets and lengths for direct I/O: the page
/// size, a multiple of every common logical block size.
const DIRECT_ALIGN: usize = 4096;

/// A block of bytes whose start is aligned for direct I/O.
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Block {
        let buf = vec![0u8; BLOCK + DIRECT_ALIGN];
        let start = (DIRECT_ALIGN - buf.as_ptr().addr() % DIRECT_ALIGN) % DIRECT_ALIGN;
        Block { buf, start, len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Appends what fits of `data`; returns how much did.
    fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(BLOCK - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
}

/// What [`HashingFile::finish`] reports.
#[derive(Debug)]
pub(crate) struct Written {
    pub bytes: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
    /// How many of the bytes went to the disk with direct I/O.
    pub direct: u64,
}

/// A part file written through a hashing and a writing thread.
pub(crate) struct HashingFile {
    block: Block,
    bytes: u64,
    /// To the hashing thread; `None` once finished.
    to_hash: Option<SyncSender<Block>>,
    /// Emptied blocks coming back from the writing thread.
    free: Receiver<Block>,
    hasher: Option<JoinHandle<blake3::Hasher>>,
    writer: Option<JoinHandle<io::Result<Output>>>,
    /// Why the writing thread stopped, once it has (a full disk, say).
    failure: Option<(io::ErrorKind, String)>,
}

impl HashingFile {
    /// Writes into `destination`.
    pub(crate) fn new(destination: Destination) -> HashingFile {
        let (to_hash, hash_rx) = sync_channel::<Block>(2);
        let (to_write, write_rx) = sync_channel::<Block>(2);
        let (free_tx, free) = channel::<Block>();
        let hasher = std::thread::spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for block in hash_rx {
                hasher.update(block.bytes());
                if to_write.send(block).is_err() {
                    break;
                }
            }
            hasher
        });
        let writer = std::thread::spawn(move || {
            let mut out = Output::new(destination);
            for mut block in write_rx {
                // Stop at the first error; the hashing thread then stops too.
                out.write(block.bytes())?;
                block.len = 0;
                let _ = free_tx.send(block);
            }
            Ok(out)
        });
        HashingFile {
            block: Block::new(),
            bytes: 0,
            to_hash: Some(to_hash),
            free,
            hasher: Some(hasher),
            writer: Some(writer),
            failure: None,
        }
    }

    /// The error that stopped the writing thread, for this and every later
    /// call: joins both threads the first time.
    fn write_failure(&mut self) -> io::Error {
        if self.failure.is_none() {
            self.to_hash = None;
            if let Some(h) = self.hasher.take() {
                let _ = h.join();
            }
            self.failure = Some(match self.writer.take().map(JoinHandle::join) {
                Some(Ok(Err(e))) => (e.kind(), e.to_string()),
                Some(Err(_)) => (
                    io::ErrorKind::Other,
                    "the part writing thread panicked".to_owned(),
                ),
                _ => (io::ErrorKind::Other, "writing the part failed".to_owned()),
            });
        }
        match &self.failure {
            Some((kind, message)) => io::Error::new(*kind, message.clone()),
            None => io::Error::other("writing the part failed"),
        }
    }

    /// Passes the gathered block on. Fails with the writing thread's error
    /// when it has stopped.
    fn send_block(&mut self) -> io::Result<()> {
        if self.block.len == 0 {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_else(|_| Block::new());
        let block = std::mem::replace(&mut self.block, next);
        let sent = self.to_hash.as_ref().map(|tx| tx.send(block));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.write_failure()),
        }
    }

    /// Writes out what is left and makes it durable: syncs the file, or
    /// completes the upload (the object appears whole).
    pub(crate) fn finish(mut self) -> io::Result<Written> {
        self.send_block()?;
        self.to_hash = None;
        let (Some(hasher), Some(writer)) = (self.hasher.take(), self.writer.take()) else {
            return Err(self.write_failure());
        };
        let hasher = hasher.join();
        let out = match writer.join() {
            Ok(out) => out?,
            Err(_) => return Err(io::Error::other("the part writing thread panicked")),
        };
        let hasher = hasher.map_err(|_| io::Error::other("the hashing thread panicked"))?;
        let direct = out.commit()?;
        Ok(Written {
            bytes: self.bytes,
            blake3: hasher.finalize().to_hex().to_string(),
            direct,
        })
    }
}

impl Drop for HashingFile {
    fn drop(&mut self) {
        // Abandoned (an error elsewhere): stop the threads.
        self.to_hash = None;
        if let Some(h) = self.hasher.take() {
            let _ = h.join();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.block.push(buf);
        self.bytes += n as u64;
        if self.block.len == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are written as they fill; `finish` writes the rest.
        Ok(())
    }
}

/// Where a part's bytes go.
pub(crate) enum Destination {
    /// A local file, which must be empty; with `direct`, written through
    /// direct I/O where the filesystem takes it.
    File { file: File, direct: bool },
    /// A multipart upload into object storage.
    Upload(Box<Upload>),
}

/// The writing thread's end.
enum Output {
    File(FileOutput),
    Upload(Box<Upload>),
}

impl Output {
    fn new(destination: Destination) -> Output {
        match destination {
            Destination::File { file, direct } => Output::File(FileOutput::new(file, direct)),
            Destination::Upload(u) => Output::Upload(u),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::File(f) => f.write(bytes),
            Output::Upload(u) => u.write(bytes),
        }
    }

    /// Makes the bytes durable; returns how many went with direct I/O.
    fn commit(self) -> io::Result<u64> {
        match self {
            Output::File(f) => {
                f.file.sync_all()?;
                Ok(f.direct_bytes)
            }
            Output::Upload(mut u) => u.commit().map(|()| 0),
        }
    }
}

/// A local file, and whether it is in direct mode.
struct FileOutput {
    file: File,
    direct: bool,
    offset: u64,
    direct_bytes: u64,
}

impl FileOutput {
    fn new(file: File, direct: bool) -> FileOutput {
        let direct = direct && direct_io::enable(&file);
        FileOutput {
            file,
            direct,
            offset: 0,
            direct_bytes: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.direct && !aligned(rest) {
                self.buffered()?;
            }
            match self.file.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    if self.direct {
                        self.direct_bytes += n as u64;
                    }
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Some filesystems take the flag and refuse the write.
                Err(e) if self.direct && direct_io::refused(&e) => self.buffered()?,
                Err(e) => return Err(e),
            }
        }
        if !self.direct {
            start_writeback(&self.file, self.offset, bytes.len() as u64);
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Leaves direct mode for good (later offsets need not be aligned).
    fn buffered(&mut self) -> io::Result<()> {
        direct_io::disable(&self.file)?;
        self.direct = false;
        Ok(())
    }
}

fn aligned(bytes: &[u8]) -> bool {
    bytes.as_ptr().addr().is_multiple_of(DIRECT_ALIGN) && bytes.len().is_multiple_of(DIRECT_ALIGN)
}

#[cfg(target_os = "linux")]
mod direct_io {
    use std::fs::File;
    use std::io;

    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

    /// Turns direct I/O on; false when the filesystem refuses it.
    pub fn enable(file: &File) -> bool {
        fcntl_getfl(file).is_ok_and(|flags| fcntl_setfl(file, flags | OFlags::DIRECT).is_ok())
    }

    pub fn disable(file: &File) -> io::Result<()> {
        let flags = fcntl_getfl(file)?;
        Ok(fcntl_setfl(file, flags.difference(OFlags::DIRECT))?)
    }

    pub fn refused(e: &io::Error) -> bool {
        e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
mod direct_io {
    use std::fs::File;
    use std::io;

    pub fn enable(_file: &File) -> bool {
        false
    }

    pub fn disable(_file: &File) -> io::Result<()> {
        Ok(())
    }

    pub fn refused(_e: &io::Error) -> bool {
        false
    }
}

/// Starts writing back a range just written through the page cache, so that
/// the final `fsync` finds little left to do (Linux; elsewhere the `fsync`
/// does it all).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        // glibc and musl, LP64: off64_t is 64-bit.
        fn sync_file_range(fd: i32, offset: i64, nbytes: i64, flags: u32) -> i32;
    }
    const SYNC_FILE_RANGE_WRITE: u32 = 2;
    // SAFETY: a valid open descriptor; the call only starts asynchronous
    // writeback of pages already written, and its failure changes nothing
    // (the file is synced with `fsync` before it is renamed).
    let _ = unsafe {
        sync_file_range(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            SYNC_FILE_RANGE_WRITE,
        )
    };
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ at every offset, so a block written twice or at
    /// the wrong place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    /// Writes `data` in pieces of `piece` bytes; returns what `finish` said
    /// and the bytes on disk.
    fn write(data: &[u8], piece: usize, direct: bool) -> (Written, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let mut file = HashingFile::new(Destination::File {
            file: File::create(&path).unwrap(),
            direct,
        });
        for chunk in data.chunks(piece) {
            file.write_all(chunk).unwrap();
        }
        let written = file.finish().unwrap();
        (written, std::fs::read(&path).unwrap())
    }

    /// Whether the filesystem of the temporary directory takes direct I/O.
    fn direct_io_here() -> bool {
        let dir = tempfile::tempdir().unwrap();
        direct_io::enable(&File::create(dir.path().join("probe")).unwrap())
    }

    #[test]
    fn every_size_is_written_whole_and_hashed() {
        let sizes = [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK + DIRECT_ALIGN,
            3 * BLOCK + 12_345,
        ];
        let direct_here = direct_io_here();
        for size in sizes {
            let data = pattern(size);
            for (direct, piece) in [(true, 1000), (true, 3 * BLOCK), (false, 65_536)] {
                let (written, on_disk) = write(&data, piece, direct);
                assert_eq!(on_disk, data, "size {size}, direct {direct}");
                assert_eq!(written.bytes, size as u64);
                assert_eq!(written.blake3, blake3::hash(&data).to_hex().to_string());
                // Every whole block goes direct where the filesystem allows,
                // and the last one too when its length is aligned.
                let expected = match (direct && direct_here, size % DIRECT_ALIGN) {
                    (false, _) => 0,
                    (true, 0) => size as u64,
                    (true, _) => (size / BLOCK * BLOCK) as u64,
                };
                assert_eq!(written.direct, expected, "size {size}, direct {direct}");
            }
        }
    }

    #[test]
    fn blocks_start_aligned() {
        for _ in 0..4 {
            let block = Block::new();
            assert_eq!(block.buf[block.start..].as_ptr().addr() % DIRECT_ALIGN, 0);
            assert!(block.buf.len() - block.start >= BLOCK);
        }
    }

    #[test]
    fn unaligned_bytes_leave_direct_mode_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let mut out = FileOutput::new(File::create(&path).unwrap(), true);
        let block = {
            let mut b = Block::new();
            b.push(&pattern(2 * DIRECT_ALIGN + 1));
            b
        };
        let aligned_part = &block.bytes()[..DIRECT_ALIGN];
        let was_direct = out.direct;
        out.write(aligned_part).unwrap();
        out.write(&block.bytes()[DIRECT_ALIGN..]).unwrap();
        assert!(!out.direct);
        assert_eq!(
            out.direct_bytes,
            if was_direct { DIRECT_ALIGN as u64 } else { 0 }
        );
        assert_eq!(std::fs::read(&path).unwrap(), block.bytes());
    }
}
