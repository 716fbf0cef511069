//! Byte buffers kept for reuse. A buffer of megabytes taken fresh from the
//! allocator costs a page fault for every 4 KiB written into it, and freeing
//! it hands the memory back only for the next one to fault it in again;
//! response bodies and encoded vector chunks, one per page or row group, are
//! such buffers.

use std::sync::Mutex;

/// A bounded stock of empty byte buffers.
#[derive(Debug)]
pub(crate) struct BufferPool {
    kept: Mutex<Vec<Vec<u8>>>,
    /// At most this many are kept.
    keep: usize,
    /// Buffers with more capacity are freed, not kept.
    max_capacity: usize,
}

impl BufferPool {
    /// A pool keeping up to `keep` buffers of at most `max_capacity` bytes.
    pub(crate) fn new(keep: usize, max_capacity: usize) -> BufferPool {
        BufferPool {
            kept: Mutex::new(Vec::new()),
            keep,
            max_capacity,
        }
    }

    /// An empty buffer: a kept one when there is one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Keeps `buf`, emptied, for a later [`BufferPool::take`], unless enough
    /// are kept already or it is too large to keep.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() > self.max_capacity {
            return;
        }
        buf.clear();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < self.keep {
            kept.push(buf);
        }
    }

    /// Buffers kept now.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.kept.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_number_of_bounded_buffers() {
        let pool = BufferPool::new(2, 1024);
        let mut buf = pool.take();
        buf.extend_from_slice(b"abc");
        let at = buf.as_ptr();
        pool.give(buf);
        let again = pool.take();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (at, 0),
            "the same buffer, emptied"
        );
        for _ in 0..3 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.kept(), 2);
        let pool = BufferPool::new(2, 1024);
        pool.give(Vec::with_capacity(1025));
        assert_eq!(pool.kept(), 0, "an outsized buffer is freed");
    }
}
