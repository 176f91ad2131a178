//! Size classes.
//!
//! Small objects (up to `MAX_SMALL_SIZE`) are rounded up to one of `NUM_CLASSES - 1`
//! sizes, Go's classes without 8 and 24 bytes, so that every class is a multiple of
//! 16 and every object is 16-byte aligned. Class 0 means "large": the object gets a
//! span of its own.
//!
//! Invariants (checked by the unit tests for every class):
//! - `CLASS_SIZE[c] % 16 == 0` and sizes strictly increase.
//! - `CLASS_NPAGES[c]` pages hold at least one object and waste at most 1/8 of
//!   the span, and `objects_per_span(c) <= MAX_OBJECTS_PER_SPAN`.
//! - For every offset `o` inside such a span, `(o * CLASS_DIV_MAGIC[c]) >> 32 ==
//!   o / CLASS_SIZE[c]`: the object index is found by one multiplication
//!   [Go: `divideByElemSize`].

/// Pages are 8 KiB [Go: _PageShift = 13].
pub const PAGE_SHIFT: usize = 13;
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Upper bound on objects per span (16-byte objects in one page give 512).
pub const MAX_OBJECTS_PER_SPAN: usize = 1024;
/// Words of a per-object bitmap of a span (alloc bits, mark bits).
pub const BITMAP_WORDS: usize = MAX_OBJECTS_PER_SPAN / 64;

/// Largest size served from size classes; larger objects get their own span.
pub const MAX_SMALL_SIZE: usize = 32768;

/// Object sizes per class; index 0 is the "large object" class.
pub const CLASS_SIZE: [u32; NUM_CLASSES] = [
    0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480,
    512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864,
    5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480,
    21760, 24576, 27264, 28672, 32768,
];

/// Number of size classes, including the large class 0.
pub const NUM_CLASSES: usize = 66;

/// A span class is a size class and a noscan bit: `class << 1 | noscan`.
pub const NUM_SPAN_CLASSES: usize = NUM_CLASSES * 2;

/// Pages per span for each class: the fewest pages that waste at most 1/8.
pub const CLASS_NPAGES: [u8; NUM_CLASSES] = compute_npages();

/// `ceil(2^32 / size)`, for the object index by multiplication.
pub const CLASS_DIV_MAGIC: [u32; NUM_CLASSES] = compute_magic();

const fn compute_npages() -> [u8; NUM_CLASSES] {
    let mut out = [0u8; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        let size = CLASS_SIZE[c] as usize;
        let mut n = 1;
        loop {
            let bytes = n * PAGE_SIZE;
            if bytes >= size && bytes % size <= bytes / 8 {
                break;
            }
            n += 1;
        }
        out[c] = n as u8;
        c += 1;
    }
    out
}

const fn compute_magic() -> [u32; NUM_CLASSES] {
    let mut out = [0u32; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        out[c] = u32::MAX / CLASS_SIZE[c] + 1;
        c += 1;
    }
    out
}

// Size-to-class lookup: sizes up to 1024 in steps of 16, then up to 32768 in steps
// of 128 [Go: size_to_class8 / size_to_class128].
const SMALL_STEP_MAX: usize = 1024;
const SMALL_TABLE: [u8; SMALL_STEP_MAX / 16 + 1] = compute_small_table();
const LARGE_TABLE: [u8; (MAX_SMALL_SIZE - SMALL_STEP_MAX) / 128 + 1] = compute_large_table();

const fn class_for_exact(size: usize) -> u8 {
    let mut c = 1;
    while c < NUM_CLASSES {
        if CLASS_SIZE[c] as usize >= size {
            return c as u8;
        }
        c += 1;
    }
    0
}

const fn compute_small_table() -> [u8; SMALL_STEP_MAX / 16 + 1] {
    let mut t = [0u8; SMALL_STEP_MAX / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_for_exact(if i == 0 { 1 } else { i * 16 });
        i += 1;
    }
    t
}

const fn compute_large_table() -> [u8; (MAX_SMALL_SIZE - SMALL_STEP_MAX) / 128 + 1] {
    let mut t = [0u8; (MAX_SMALL_SIZE - SMALL_STEP_MAX) / 128 + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_for_exact(SMALL_STEP_MAX + i * 128);
        i += 1;
    }
    t
}

/// The size class for an allocation of `size` bytes (1..=MAX_SMALL_SIZE).
#[inline]
pub fn size_to_class(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_SMALL_SIZE);
    if size <= SMALL_STEP_MAX {
        SMALL_TABLE[(size + 15) >> 4] as usize
    } else {
        LARGE_TABLE[(size - SMALL_STEP_MAX + 127) >> 7] as usize
    }
}

/// Objects in one span of class `c`.
#[inline]
pub fn objects_per_span(c: usize) -> usize {
    CLASS_NPAGES[c] as usize * PAGE_SIZE / CLASS_SIZE[c] as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_16_byte_multiples_and_increase() {
        for c in 1..NUM_CLASSES {
            assert_eq!(CLASS_SIZE[c] % 16, 0, "class {c}");
            if c > 1 {
                assert!(CLASS_SIZE[c] > CLASS_SIZE[c - 1]);
            }
        }
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_SMALL_SIZE);
    }

    #[test]
    fn spans_fit_bitmaps_and_waste_little() {
        for c in 1..NUM_CLASSES {
            let n = objects_per_span(c);
            assert!((1..=MAX_OBJECTS_PER_SPAN).contains(&n), "class {c}: {n} objects");
            let bytes = CLASS_NPAGES[c] as usize * PAGE_SIZE;
            assert!(bytes % CLASS_SIZE[c] as usize <= bytes / 8, "class {c} wastes too much");
        }
    }

    #[test]
    fn size_to_class_picks_smallest_fitting_class() {
        for size in 1..=MAX_SMALL_SIZE {
            let c = size_to_class(size);
            assert!(c >= 1, "size {size}");
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} class {c}");
            assert!(c == 1 || (CLASS_SIZE[c - 1] as usize) < size, "size {size} not smallest");
        }
    }
}
