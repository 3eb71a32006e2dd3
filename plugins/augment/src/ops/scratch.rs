//! Per-thread scratch buffers, so that the ops allocate nothing per call once warm.

use std::cell::RefCell;

/// Buffers an op may use for the duration of one call (their contents are garbage on entry).
#[derive(Default)]
pub(crate) struct Scratch {
    pub bytes: Vec<u8>,
    pub marks: Vec<bool>,
    pub index: Vec<u32>,
    pub index2: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are already in use).
pub(crate) fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Fills `v` with a copy of `src` followed by `extra` (reusing its allocation).
#[inline]
pub(crate) fn copy_with<T: Copy>(v: &mut Vec<T>, src: &[T], extra: &[T]) {
    v.clear();
    v.reserve(src.len() + extra.len());
    v.extend_from_slice(src);
    v.extend_from_slice(extra);
}
