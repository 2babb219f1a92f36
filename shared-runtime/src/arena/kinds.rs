//! `NamedObject` for every kind: how each lays out its block and is built from it.

use std::mem::{align_of, size_of};
use std::sync::Arc;

use crate::arena::kind::{LockKind, NamedObject, ObjectKind, Parts, Shape};
use crate::arena::Allocation;
use crate::raw::{RawArray, RawValue};
use crate::sync::{Event, GenericLock, LockCore, Reentrancy, Synchronized, Token};
use crate::SharedType;

/// The directory sizes objects by their layout: a layout that lied about its size or
/// alignment would make it hand out too little memory. (`SharedType` is an unsafe trait, so
/// a lie is the implementor's bug; this turns it into a compile error.)
const fn assert_truthful<T: SharedType>() {
    assert!(T::LAYOUT.size == size_of::<T>() && T::LAYOUT.align == align_of::<T>());
}

/// # Safety
/// `data` holds `items.len()` elements of `T`, aligned.
unsafe fn store_all<T: SharedType>(items: &[T], data: *mut u8) {
    for (i, v) in items.iter().enumerate() {
        // SAFETY: in bounds and aligned by the caller's contract.
        unsafe { T::store(v, data.cast::<T>().add(i)) }
    }
}

/// The lock of a `Value`/`Array` block: the cell at the start of the block.
fn lock_of<K: Reentrancy>(data: &Arc<Allocation>) -> GenericLock<K> {
    let block = data
        .parent()
        .expect("a named Value's data is part of its block")
        .clone();
    GenericLock::from_core(LockCore::from_alloc(block))
}

impl<T: SharedType> NamedObject for RawValue<T> {
    type Init<'a> = T;
    const KIND: ObjectKind = ObjectKind::RawValue;
    fn shape(_: Option<&T>, _: Token) -> Shape {
        const { assert_truthful::<T>() };
        Shape {
            layout: Some(&T::LAYOUT),
            len: Some(1),
        }
    }
    unsafe fn init(init: &T, data: *mut u8, _: Token) {
        // SAFETY: the caller passes a fresh block's data, holding one aligned `T`.
        unsafe { T::store(init, data.cast::<T>()) }
    }
    fn build(parts: Parts, _: Token) -> Self {
        RawValue::from_arc(parts.data)
    }
}

impl<T: SharedType> NamedObject for RawArray<T> {
    type Init<'a> = &'a [T];
    const KIND: ObjectKind = ObjectKind::RawArray;
    fn shape(init: Option<&&[T]>, _: Token) -> Shape {
        const { assert_truthful::<T>() };
        Shape {
            layout: Some(&T::LAYOUT),
            len: init.map(|i| i.len() as u64),
        }
    }
    unsafe fn init(init: &&[T], data: *mut u8, _: Token) {
        // SAFETY: the caller passes a fresh block's data, holding init.len() elements.
        unsafe { store_all(init, data) }
    }
    fn build(parts: Parts, _: Token) -> Self {
        RawArray::from_arc(parts.data, parts.len)
    }
}

impl<T: SharedType, K: Reentrancy> NamedObject for Synchronized<RawValue<T>, GenericLock<K>> {
    type Init<'a> = T;
    const KIND: ObjectKind = ObjectKind::Value(if K::REENTRANT {
        LockKind::RLock
    } else {
        LockKind::Lock
    });
    fn shape(init: Option<&T>, t: Token) -> Shape {
        RawValue::<T>::shape(init, t)
    }
    unsafe fn init(init: &T, data: *mut u8, t: Token) {
        // SAFETY: forwarded; the lock cell before the data is zero, an unlocked lock.
        unsafe { RawValue::<T>::init(init, data, t) }
    }
    fn build(parts: Parts, t: Token) -> Self {
        let lock = lock_of::<K>(&parts.data);
        // The data's handle is this process's only one (`opened.rs`): wrapping it is sound.
        Synchronized::from_opened(RawValue::build(parts, t), lock)
    }
}

impl<T: SharedType, K: Reentrancy> NamedObject for Synchronized<RawArray<T>, GenericLock<K>> {
    type Init<'a> = &'a [T];
    const KIND: ObjectKind = ObjectKind::Array(if K::REENTRANT {
        LockKind::RLock
    } else {
        LockKind::Lock
    });
    fn shape(init: Option<&&[T]>, t: Token) -> Shape {
        RawArray::<T>::shape(init, t)
    }
    unsafe fn init(init: &&[T], data: *mut u8, t: Token) {
        // SAFETY: forwarded; the lock cell before the data is zero, an unlocked lock.
        unsafe { RawArray::<T>::init(init, data, t) }
    }
    fn build(parts: Parts, t: Token) -> Self {
        let lock = lock_of::<K>(&parts.data);
        Synchronized::from_opened(RawArray::build(parts, t), lock)
    }
}

impl<K: Reentrancy> NamedObject for GenericLock<K> {
    type Init<'a> = ();
    const KIND: ObjectKind = ObjectKind::Lock(if K::REENTRANT {
        LockKind::RLock
    } else {
        LockKind::Lock
    });
    fn shape(_: Option<&()>, _: Token) -> Shape {
        Shape {
            layout: None,
            len: Some(1),
        }
    }
    unsafe fn init(_: &(), _: *mut u8, _: Token) {
        // A zeroed cell is an unlocked lock.
    }
    fn build(parts: Parts, _: Token) -> Self {
        GenericLock::from_core(LockCore::from_alloc(parts.data))
    }
}

impl NamedObject for Event {
    type Init<'a> = ();
    const KIND: ObjectKind = ObjectKind::Event;
    fn shape(_: Option<&()>, _: Token) -> Shape {
        // No element layout: a block the size of a lock cell, of which the event uses the
        // first word.
        Shape {
            layout: None,
            len: Some(1),
        }
    }
    unsafe fn init(_: &(), _: *mut u8, _: Token) {
        // A zeroed block is an unset event.
    }
    fn build(parts: Parts, _: Token) -> Self {
        Event::from_alloc(parts.data)
    }
}
