//! Records: one event, archived with rkyv, inside a data frame.
//!
//! A record is an 8-byte header (`kind: u8`, 3 zero bytes, `len: u32`) followed by
//! the rkyv archive of the event's *variant struct* (`Reply`, `Banner`, ...), not
//! of the whole `Event` enum: an archived enum is as large as its largest variant
//! (136 bytes), an archived `Reply` is 40. Readers get an [`EventRef`], a borrowed
//! view of the archived variant, validated with rkyv's bytecheck.
//!
//! This module owns the record encoding and [`EventRef`]; it never touches files.

use crate::event::*;
use rkyv::api::low::{LowSerializer, LowValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::Failure;
use rkyv::ser::allocator::{Arena, ArenaHandle, SubAllocator};
use rkyv::ser::writer::Buffer;
use rkyv::Portable;

/// Which event a record holds: the index of the variant in [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    /// [`Event::ScanStarted`].
    ScanStarted = 0,
    /// [`Event::Reply`].
    Reply = 1,
    /// [`Event::Banner`].
    Banner = 2,
    /// [`Event::Service`].
    Service = 3,
    /// [`Event::Checkpoint`].
    Checkpoint = 4,
    /// [`Event::Paused`].
    Paused = 5,
    /// [`Event::Resumed`].
    Resumed = 6,
    /// [`Event::Finished`].
    Finished = 7,
    /// [`Event::Failed`].
    Failed = 8,
    /// [`Event::Sample`].
    Sample = 9,
    /// [`Event::ExportComplete`].
    ExportComplete = 10,
    /// [`Event::Governor`].
    Governor = 11,
}

impl EventKind {
    /// All kinds, in tag order.
    pub const ALL: [EventKind; 12] = [
        EventKind::ScanStarted,
        EventKind::Reply,
        EventKind::Banner,
        EventKind::Service,
        EventKind::Checkpoint,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Finished,
        EventKind::Failed,
        EventKind::Sample,
        EventKind::ExportComplete,
        EventKind::Governor,
    ];

    /// The kind for a record tag, `None` for tags written by a newer prtip.
    pub fn from_tag(tag: u8) -> Option<EventKind> {
        Self::ALL.get(tag as usize).copied()
    }

    /// Name as in the schema (`Reply`, `Checkpoint`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ScanStarted => "ScanStarted",
            EventKind::Reply => "Reply",
            EventKind::Banner => "Banner",
            EventKind::Service => "Service",
            EventKind::Checkpoint => "Checkpoint",
            EventKind::Paused => "Paused",
            EventKind::Resumed => "Resumed",
            EventKind::Finished => "Finished",
            EventKind::Failed => "Failed",
            EventKind::Sample => "Sample",
            EventKind::ExportComplete => "ExportComplete",
            EventKind::Governor => "Governor",
        }
    }
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ScanStarted(_) => EventKind::ScanStarted,
            Event::Reply(_) => EventKind::Reply,
            Event::Banner(_) => EventKind::Banner,
            Event::Service(_) => EventKind::Service,
            Event::Checkpoint(_) => EventKind::Checkpoint,
            Event::Paused(_) => EventKind::Paused,
            Event::Resumed(_) => EventKind::Resumed,
            Event::Finished(_) => EventKind::Finished,
            Event::Failed(_) => EventKind::Failed,
            Event::Sample(_) => EventKind::Sample,
            Event::ExportComplete(_) => EventKind::ExportComplete,
            Event::Governor(_) => EventKind::Governor,
        }
    }
}

/// A validated, zero-copy view of one event in the log.
///
/// Match on it like on [`Event`]; every arm borrows the archived variant
/// (`&ArchivedReply` has the same fields as `Reply`, with archived integer types:
/// use `.to_native()` or `u16::from(..)`). [`EventRef::to_event`] makes an owned copy.
#[derive(Clone, Copy, Debug)]
pub enum EventRef<'a> {
    /// First event: the spec.
    ScanStarted(&'a ArchivedScanStarted),
    /// A port state.
    Reply(&'a ArchivedReply),
    /// Raw service bytes.
    Banner(&'a ArchivedBanner),
    /// A detected service.
    Service(&'a ArchivedService),
    /// A durable position.
    Checkpoint(&'a ArchivedCheckpoint),
    /// Stopped on request.
    Paused(&'a ArchivedPaused),
    /// Continued.
    Resumed(&'a ArchivedResumed),
    /// Done.
    Finished(&'a ArchivedFinished),
    /// Could not continue.
    Failed(&'a ArchivedFailed),
    /// Metrics.
    Sample(&'a ArchivedSample),
    /// An export was written.
    ExportComplete(&'a ArchivedExportComplete),
    /// A rate governor decision.
    Governor(&'a ArchivedGovernor),
}

fn de<T, A>(a: &A) -> T
where
    A: rkyv::Deserialize<T, rkyv::api::low::LowDeserializer<Failure>>,
{
    // Deserializing a validated archive of these types cannot fail: they hold no
    // shared pointers and no types with fallible conversions.
    rkyv::api::low::deserialize::<T, Failure>(a).expect("validated archive deserializes")
}

impl EventRef<'_> {
    /// Kind of the event.
    #[inline]
    pub fn kind(&self) -> EventKind {
        match self {
            EventRef::ScanStarted(_) => EventKind::ScanStarted,
            EventRef::Reply(_) => EventKind::Reply,
            EventRef::Banner(_) => EventKind::Banner,
            EventRef::Service(_) => EventKind::Service,
            EventRef::Checkpoint(_) => EventKind::Checkpoint,
            EventRef::Paused(_) => EventKind::Paused,
            EventRef::Resumed(_) => EventKind::Resumed,
            EventRef::Finished(_) => EventKind::Finished,
            EventRef::Failed(_) => EventKind::Failed,
            EventRef::Sample(_) => EventKind::Sample,
            EventRef::ExportComplete(_) => EventKind::ExportComplete,
            EventRef::Governor(_) => EventKind::Governor,
        }
    }

    /// Unix time of the event, microseconds.
    #[inline]
    pub fn time_us(&self) -> u64 {
        // Replies first, as in `decode`: no indirect jump for nearly every record.
        if let EventRef::Reply(e) = self {
            return e.time_us.to_native();
        }
        match self {
            EventRef::ScanStarted(e) => e.time_us.to_native(),
            EventRef::Reply(e) => e.time_us.to_native(),
            EventRef::Banner(e) => e.time_us.to_native(),
            EventRef::Service(e) => e.time_us.to_native(),
            EventRef::Checkpoint(e) => e.time_us.to_native(),
            EventRef::Paused(e) => e.time_us.to_native(),
            EventRef::Resumed(e) => e.time_us.to_native(),
            EventRef::Finished(e) => e.time_us.to_native(),
            EventRef::Failed(e) => e.time_us.to_native(),
            EventRef::Sample(e) => e.time_us.to_native(),
            EventRef::ExportComplete(e) => e.time_us.to_native(),
            EventRef::Governor(e) => e.time_us.to_native(),
        }
    }

    /// An owned copy of the event.
    pub fn to_event(&self) -> Event {
        match *self {
            EventRef::ScanStarted(e) => Event::ScanStarted(Box::new(de(e))),
            EventRef::Reply(e) => Event::Reply(de(e)),
            EventRef::Banner(e) => Event::Banner(de(e)),
            EventRef::Service(e) => Event::Service(de(e)),
            EventRef::Checkpoint(e) => Event::Checkpoint(de(e)),
            EventRef::Paused(e) => Event::Paused(de(e)),
            EventRef::Resumed(e) => Event::Resumed(de(e)),
            EventRef::Finished(e) => Event::Finished(de(e)),
            EventRef::Failed(e) => Event::Failed(de(e)),
            EventRef::Sample(e) => Event::Sample(de(e)),
            EventRef::ExportComplete(e) => Event::ExportComplete(de(e)),
            EventRef::Governor(e) => Event::Governor(de(e)),
        }
    }
}

/// Deserialize an archived checkpoint.
pub fn checkpoint_of(c: &ArchivedCheckpoint) -> Checkpoint {
    de(c)
}
/// Deserialize archived counters.
pub fn counters_of(c: &ArchivedCounters) -> Counters {
    de(c)
}
/// Deserialize an archived scan start.
pub fn scan_started_of(s: &ArchivedScanStarted) -> ScanStarted {
    de(s)
}

type Ser<'a, 'b> = LowSerializer<Buffer<'a>, ArenaHandle<'b>, Failure>;
type SerNoAlloc<'a, 'b> = LowSerializer<Buffer<'a>, SubAllocator<'b>, Failure>;

/// Archive a pointer-free, fixed-size value (`Reply`, `Checkpoint`, `Finished`,
/// `Sample`) straight into `out`: rkyv's `Archive::resolve` into a [`rkyv::Place`]
/// at the start of `out`, with no serializer and no intermediate copy. The bytes
/// are exactly what rkyv's serializer produces (the root is the whole archive).
#[inline(always)]
fn put_plain<T>(value: &T, out: &mut [u8]) -> Option<usize>
where
    T: rkyv::Archive + rkyv::Serialize<rkyv::rancor::Strategy<(), Failure>>,
{
    let size = std::mem::size_of::<T::Archived>();
    if out.len() < size
        || !(out.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T::Archived>())
    {
        return None;
    }
    // Needs no serializer state: only pointer-free types satisfy this bound.
    let resolver = value
        .serialize(rkyv::rancor::Strategy::wrap(&mut ()))
        .ok()?;
    out[..size].fill(0); // padding bytes are part of the CRC: make them zero
                         // SAFETY: `out` holds at least `size` writable bytes and its start is aligned
                         // for `T::Archived` (both checked above); position 0 is right because the
                         // archive has no relative pointers.
    unsafe {
        let place = rkyv::Place::new_unchecked(0, out.as_mut_ptr() as *mut T::Archived);
        value.resolve(resolver, place);
    }
    Some(size)
}

/// Serialize a type that needs no scratch space (no `Vec` of non-plain values):
/// everything but `ScanStarted`.
#[inline(always)]
fn ser_plain<T>(value: &T, out: &mut [u8]) -> Option<usize>
where
    T: for<'a, 'b> rkyv::Serialize<SerNoAlloc<'a, 'b>>,
{
    rkyv::api::low::to_bytes_in_with_alloc::<_, _, Failure>(
        value,
        Buffer::from(out),
        SubAllocator::empty(),
    )
    .ok()
    .map(|b| b.len())
}

#[inline(always)]
fn ser<T>(value: &T, out: &mut [u8], arena: &mut Arena) -> Option<usize>
where
    T: for<'a, 'b> rkyv::Serialize<Ser<'a, 'b>>,
{
    rkyv::api::low::to_bytes_in_with_alloc::<_, _, Failure>(
        value,
        Buffer::from(out),
        arena.acquire(),
    )
    .ok()
    .map(|b| b.len())
}

/// Archive the variant of `ev` into `out` (which must start 8-aligned in memory).
/// Returns the archive length, or `None` if `out` is too small.
#[inline]
pub fn encode(ev: &Event, out: &mut [u8], arena: &mut Arena) -> Option<usize> {
    match ev {
        Event::ScanStarted(e) => ser(&**e, out, arena),
        Event::Reply(e) => put_plain(e, out),
        Event::Banner(e) => ser_plain(e, out),
        Event::Service(e) => ser_plain(e, out),
        Event::Checkpoint(e) => put_plain(e, out),
        Event::Paused(e) => ser_plain(e, out),
        Event::Resumed(e) => ser_plain(e, out),
        Event::Finished(e) => put_plain(e, out),
        Event::Failed(e) => ser_plain(e, out),
        Event::Sample(e) => put_plain(e, out),
        Event::ExportComplete(e) => ser_plain(e, out),
        Event::Governor(e) => put_plain(e, out),
    }
}

/// Archived size of `ev` (serializes into scratch memory; slow path for big events).
pub fn encoded_len(ev: &Event) -> usize {
    let mut arena = Arena::new();
    let mut size = 4096;
    loop {
        let mut buf = vec![0u64; size / 8];
        // SAFETY: viewing an initialized u64 buffer as bytes; u8 has no alignment
        // or validity requirements and the length is exact.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, size) };
        if let Some(n) = encode(ev, bytes, &mut arena) {
            return n;
        }
        size *= 2;
    }
}

#[inline(always)]
fn check<T>(bytes: &[u8]) -> Option<&T>
where
    T: Portable + for<'a> CheckBytes<LowValidator<'a, Failure>>,
{
    rkyv::api::low::access::<T, Failure>(bytes).ok()
}

/// Validate a pointer-free, fixed-size archive with its bytecheck `CheckBytes`
/// impl directly: the archive is exactly one `T` (what `put_plain` writes), so no
/// validator context (subtree ranges for relative pointers) is needed.
#[inline(always)]
fn check_plain<T>(bytes: &[u8]) -> Option<&T>
where
    T: Portable + CheckBytes<rkyv::rancor::Strategy<(), Failure>>,
{
    if bytes.len() != std::mem::size_of::<T>()
        || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    let ptr = bytes.as_ptr() as *const T;
    // SAFETY: `ptr` is aligned for `T` and points at `size_of::<T>()` readable
    // bytes (both checked above); check_bytes reads only those bytes.
    unsafe { T::check_bytes(ptr, rkyv::rancor::Strategy::wrap(&mut ())).ok()? };
    // SAFETY: check_bytes succeeded, so the bytes are a valid `T`, and they live
    // as long as `bytes`.
    Some(unsafe { &*ptr })
}

/// Validate an archive of kind `tag`. `Ok(None)` for a tag this prtip does not
/// know (written by a newer version: skipped); `Err` if the bytes are not a valid
/// archive of that kind.
#[inline]
pub fn decode(tag: u8, bytes: &[u8]) -> Result<Option<EventRef<'_>>, ()> {
    // Replies are nearly every record of a scan: test for them before the
    // dispatch on the kind (an indirect jump the loop would otherwise wait on).
    if tag == EventKind::Reply as u8 {
        return check_plain(bytes)
            .map(|r| Some(EventRef::Reply(r)))
            .ok_or(());
    }
    let Some(kind) = EventKind::from_tag(tag) else {
        return Ok(None);
    };
    let r = match kind {
        EventKind::ScanStarted => check(bytes).map(EventRef::ScanStarted),
        EventKind::Reply => check_plain(bytes).map(EventRef::Reply),
        EventKind::Banner => check(bytes).map(EventRef::Banner),
        EventKind::Service => check(bytes).map(EventRef::Service),
        EventKind::Checkpoint => check_plain(bytes).map(EventRef::Checkpoint),
        EventKind::Paused => check(bytes).map(EventRef::Paused),
        EventKind::Resumed => check(bytes).map(EventRef::Resumed),
        EventKind::Finished => check_plain(bytes).map(EventRef::Finished),
        EventKind::Failed => check(bytes).map(EventRef::Failed),
        EventKind::Sample => check_plain(bytes).map(EventRef::Sample),
        EventKind::ExportComplete => check(bytes).map(EventRef::ExportComplete),
        EventKind::Governor => check_plain(bytes).map(EventRef::Governor),
    };
    r.map(Some).ok_or(())
}

/// A human-readable reason why `bytes` is not a valid archive of `tag` (slow path).
pub fn explain(tag: u8, bytes: &[u8]) -> String {
    fn why<T>(bytes: &[u8]) -> String
    where
        T: Portable + for<'a> CheckBytes<LowValidator<'a, rkyv::rancor::Error>>,
    {
        match rkyv::api::low::access::<T, rkyv::rancor::Error>(bytes) {
            Ok(_) => "valid".into(),
            Err(e) => e.to_string(),
        }
    }
    let detail = match EventKind::from_tag(tag) {
        None => return format!("unknown record kind {tag}"),
        Some(EventKind::ScanStarted) => why::<ArchivedScanStarted>(bytes),
        Some(EventKind::Reply) => why::<ArchivedReply>(bytes),
        Some(EventKind::Banner) => why::<ArchivedBanner>(bytes),
        Some(EventKind::Service) => why::<ArchivedService>(bytes),
        Some(EventKind::Checkpoint) => why::<ArchivedCheckpoint>(bytes),
        Some(EventKind::Paused) => why::<ArchivedPaused>(bytes),
        Some(EventKind::Resumed) => why::<ArchivedResumed>(bytes),
        Some(EventKind::Finished) => why::<ArchivedFinished>(bytes),
        Some(EventKind::Failed) => why::<ArchivedFailed>(bytes),
        Some(EventKind::Sample) => why::<ArchivedSample>(bytes),
        Some(EventKind::ExportComplete) => why::<ArchivedExportComplete>(bytes),
        Some(EventKind::Governor) => why::<ArchivedGovernor>(bytes),
    };
    format!(
        "{} record fails rkyv validation: {detail}",
        EventKind::from_tag(tag).unwrap().name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[repr(align(16))]
    struct Aligned([u8; 4096]);

    #[test]
    fn reply_is_forty_bytes_and_round_trips() {
        let r = Reply {
            addr: Ipv4Addr::new(10, 1, 2, 3).into(),
            port: 8080,
            proto: Protocol::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            ttl: 63,
            icmp_code: 0,
            rtt_us: 250,
            time_us: 42,
        };
        let mut buf = Aligned([0; 4096]);
        let mut arena = Arena::new();
        let n = encode(&Event::Reply(r), &mut buf.0, &mut arena).unwrap();
        assert_eq!(n, 40);
        let ev = decode(EventKind::Reply as u8, &buf.0[..n])
            .unwrap()
            .unwrap();
        assert_eq!(ev.to_event(), Event::Reply(r));
        assert_eq!(ev.time_us(), 42);
        // a bad enum discriminant (proto = 7) is refused by bytecheck
        let mut bad = Aligned([0; 4096]);
        bad.0[..n].copy_from_slice(&buf.0[..n]);
        bad.0[18] = 7;
        assert!(decode(EventKind::Reply as u8, &bad.0[..n]).is_err());
        assert!(explain(EventKind::Reply as u8, &bad.0[..n]).contains("Reply"));
        // unknown kinds are skipped, not errors
        assert!(decode(200, &buf.0[..n]).unwrap().is_none());
    }

    #[test]
    fn in_place_archives_equal_rkyv_serializer_output() {
        let mut arena = Arena::new();
        let evs = [
            Event::Reply(Reply {
                addr: Ipv4Addr::new(198, 19, 255, 1).into(),
                port: 65535,
                proto: Protocol::Udp,
                state: PortState::OpenFiltered,
                reason: Reason::ConnRefused,
                ttl: 255,
                icmp_code: 3,
                rtt_us: u32::MAX,
                time_us: u64::MAX - 1,
            }),
            Event::Checkpoint(Checkpoint {
                next_index: 1 << 40,
                counters: Counters {
                    sent: 1,
                    replies: 2,
                    invalid: 3,
                    open: 4,
                    closed: 5,
                    drops: 6,
                },
                time_us: 9,
            }),
            Event::Finished(Finished {
                time_us: 3,
                counters: Counters {
                    sent: 7,
                    ..Default::default()
                },
            }),
            Event::Sample(Sample {
                time_us: 1,
                pps: 2.5,
                rps: -0.0,
                cpu_percent: 99.5,
                rtt_us: [1, 2, 3, 4],
                ..Default::default()
            }),
            Event::Governor(Governor {
                time_us: 5,
                reason: GovernorReason::NetLoss,
                adaptive: true,
                net_prefix: 24,
                rate_mpps: 40_000_000,
                ceiling_mpps: 1_000_000_000,
                floor_mpps: 1_000,
                net_rate_mpps: 2_000_000,
                refs_sent: 64,
                refs_answered: 3,
                slow_nets: 1,
                net: Some(Ipv4Addr::new(198, 19, 7, 0).into()),
            }),
        ];
        for ev in &evs {
            let expected = match ev {
                Event::Reply(e) => rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap(),
                Event::Checkpoint(e) => rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap(),
                Event::Finished(e) => rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap(),
                Event::Sample(e) => rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap(),
                Event::Governor(e) => rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap(),
                _ => unreachable!(),
            };
            // Garbage in the destination must not leak into padding.
            let mut buf = Aligned([0xAA; 4096]);
            let n = encode(ev, &mut buf.0, &mut arena).unwrap();
            assert_eq!(&buf.0[..n], &expected[..], "{:?}", ev.kind());
            let back = decode(ev.kind() as u8, &buf.0[..n]).unwrap().unwrap();
            assert_eq!(&back.to_event(), ev);
        }
        // A misaligned destination is refused, not written.
        let mut buf = Aligned([0; 4096]);
        assert!(encode(&evs[0], &mut buf.0[4..], &mut arena).is_none());
    }

    #[test]
    fn too_small_buffer_is_none() {
        let mut buf = Aligned([0; 4096]);
        let mut arena = Arena::new();
        let ev = Event::Failed(Failed {
            time_us: 1,
            message: "x".repeat(100),
        });
        assert!(encode(&ev, &mut buf.0[..64], &mut arena).is_none());
        let n = encode(&ev, &mut buf.0, &mut arena).unwrap();
        assert_eq!(encoded_len(&ev), n);
        let back = decode(EventKind::Failed as u8, &buf.0[..n])
            .unwrap()
            .unwrap();
        assert_eq!(back.to_event(), ev);
    }
}
