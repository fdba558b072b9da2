//! Flat arrays a frozen graph reads: owned on the heap (after a build) or borrowed from a
//! read-only memory map of a snapshot file (after a restart), so a large shard starts by
//! mapping its file instead of reading it, and the kernel pages vectors in as searches touch
//! them and out again under memory pressure.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

/// A snapshot file mapped read-only. The file must not be truncated or rewritten in place
/// while mapped (snapshots are replaced by rename, which leaves the mapped inode intact).
#[derive(Clone)]
pub struct MappedFile(Arc<Mmap>);

impl MappedFile {
    /// Maps the file at `path`.
    ///
    /// # Safety
    /// Nothing may truncate or rewrite the file in place while any `Rows` made from the map is
    /// alive: the slices would change under the reader, and pages cut off by a truncation
    /// fault (SIGBUS). Replacing the file by rename is safe.
    pub unsafe fn open(path: &Path) -> io::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Self::map(&File::open(path)?) }
    }

    /// Maps an open file (e.g. a snapshot just written, before it is renamed into place).
    ///
    /// # Safety
    /// As for [`open`](Self::open).
    pub unsafe fn map(file: &File) -> io::Result<Self> {
        // SAFETY: read-only map; the caller guarantees the file is not changed in place.
        let map = unsafe { Mmap::map(file)? };
        Ok(Self(Arc::new(map)))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedFile({} bytes)", self.0.len())
    }
}

enum Owner<T> {
    Heap(Vec<T>),
    Mapped(#[allow(dead_code)] MappedFile),
}

/// A read-only slice of `T` that owns its memory or keeps its mapped file alive.
pub struct Rows<T: bytemuck::Pod> {
    ptr: *const T,
    len: usize,
    owner: Owner<T>,
}

// SAFETY: `Rows` only hands out shared slices of plain data; its pointer targets a heap
// buffer it owns (which does not move when the `Vec` does) or a mapping it keeps alive.
unsafe impl<T: bytemuck::Pod + Send> Send for Rows<T> {}
unsafe impl<T: bytemuck::Pod + Sync> Sync for Rows<T> {}

impl<T: bytemuck::Pod> Rows<T> {
    /// `len` values of `T` at byte `offset` of `file`, or an error when the range falls
    /// outside the file or is misaligned for `T`.
    pub fn mapped(file: &MappedFile, offset: usize, len: usize) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let bytes = len
            .checked_mul(size_of::<T>())
            .and_then(|n| n.checked_add(offset))
            .and_then(|end| file.bytes().get(offset..end))
            .ok_or_else(|| bad("snapshot is truncated"))?;
        let slice: &[T] =
            bytemuck::try_cast_slice(bytes).map_err(|_| bad("snapshot section is misaligned"))?;
        Ok(Self {
            ptr: slice.as_ptr(),
            len,
            owner: Owner::Mapped(file.clone()),
        })
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.owner, Owner::Mapped(_))
    }

    /// The values as an owned vector (a copy when mapped).
    pub fn into_vec(self) -> Vec<T> {
        match self.owner {
            Owner::Heap(v) => v,
            Owner::Mapped(_) => self.to_vec(),
        }
    }

    /// The values, writable: a mapped `Rows` is first copied to the heap.
    pub fn make_mut(&mut self) -> &mut [T] {
        if self.is_mapped() {
            *self = self.to_vec().into();
        }
        // SAFETY: the values are now in the owned heap buffer, whose pointer came from
        // `Vec::as_mut_ptr`, and `&mut self` makes this the only access while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast_mut(), self.len) }
    }

    /// Bytes this holds on the heap (a mapping holds none: its pages belong to the file).
    pub fn heap_bytes(&self) -> usize {
        match self.owner {
            Owner::Heap(_) => size_of_val(&**self),
            Owner::Mapped(_) => 0,
        }
    }
}

impl<T: bytemuck::Pod> From<Vec<T>> for Rows<T> {
    fn from(mut v: Vec<T>) -> Self {
        Self {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            owner: Owner::Heap(v),
        }
    }
}

impl<T: bytemuck::Pod> Default for Rows<T> {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<T: bytemuck::Pod> Deref for Rows<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr..ptr + len` lies in the buffer or mapping that `owner` keeps alive,
        // checked for bounds and alignment when the `Rows` was made.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: bytemuck::Pod> Clone for Rows<T> {
    fn clone(&self) -> Self {
        match &self.owner {
            Owner::Heap(_) => self.to_vec().into(),
            Owner::Mapped(file) => Self {
                ptr: self.ptr,
                len: self.len,
                owner: Owner::Mapped(file.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn mapped_rows_read_the_file_and_reject_bad_ranges() {
        let dir = std::env::temp_dir().join(format!("rows-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rows.bin");
        let values: Vec<u32> = (0..100).collect();
        File::create(&path)
            .unwrap()
            .write_all(bytemuck::cast_slice(&values))
            .unwrap();
        // SAFETY: the test's own file, not changed while mapped.
        let file = unsafe { MappedFile::open(&path) }.unwrap();
        let rows = Rows::<u32>::mapped(&file, 8, 10).unwrap();
        assert!(rows.is_mapped());
        assert_eq!(&*rows, &values[2..12]);
        assert_eq!(rows.heap_bytes(), 0);
        assert_eq!(rows.clone().into_vec(), values[2..12].to_vec());
        assert!(Rows::<u32>::mapped(&file, 2, 1).is_err(), "misaligned");
        assert!(Rows::<u32>::mapped(&file, 0, 101).is_err(), "past the end");
        assert!(
            Rows::<u32>::mapped(&file, usize::MAX - 3, 1).is_err(),
            "overflow"
        );
        let heap: Rows<u32> = values.clone().into();
        assert_eq!(heap.heap_bytes(), 400);
        assert_eq!(heap.into_vec(), values);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
