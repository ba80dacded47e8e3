//! The newest frame of a screen cast, handed from PipeWire's thread to the capture thread.
//!
//! The stream writes every buffer it dequeues into one picture and adds up what changed; the
//! capture thread, at its own pace, copies out only what changed since its last look. Nothing
//! queues: a compositor sending 60 frames a second to a share grabbing 5 costs 60 copies of
//! what changed, never a backlog.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::buffer::MAX_DAMAGE_RECTS;
use crate::capture::{Damage, PointerShape, PointerState};
use crate::pixels::{Picture, Rect, at_most};

/// The state both threads share.
#[derive(Debug, Default)]
pub struct Mailbox {
    latest: Mutex<Latest>,
    /// Rung on every new frame and when the stream ends.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Latest {
    /// The newest picture, whole.
    picture: Option<Picture>,
    /// What changed since the capture thread last looked; `None`: nothing.
    pending: Option<Damage>,
    /// Frames with pixels received so far.
    frames: u64,
    /// The pointer from cursor metadata; `None` until the first, or without metadata.
    pointer: Option<PointerState>,
    /// Why the stream ended, once it has: no frame will come any more.
    ended: Option<String>,
}

/// What the capture thread takes out in one look.
#[derive(Debug)]
pub struct Taken {
    pub damage: Damage,
    pub pointer: Option<PointerState>,
}

impl Mailbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn latest(&self) -> MutexGuard<'_, Latest> {
        // A panic on the other thread left the picture as it was mid-copy: still a picture.
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new frame from the stream: `write` brings the picture (resized to `width` x `height`
    /// first where needed, then counting as changed all over) up to date where `damage` says.
    /// An error from `write` leaves the frame uncounted.
    pub fn put_frame<E>(
        &self,
        width: u32,
        height: u32,
        damage: Damage,
        write: impl FnOnce(&mut Picture, &[Rect]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut latest = self.latest();
        let resized = latest
            .picture
            .as_ref()
            .is_none_or(|picture| picture.width() != width || picture.height() != height);
        if resized {
            latest.picture = Some(Picture::new(width, height));
        }
        let damage = if resized { Damage::Unknown } else { damage };
        let bounds = Rect::new(0, 0, width, height);
        let rects = match &damage {
            Damage::Unknown => vec![bounds],
            Damage::Rects(rects) => rects.clone(),
        };
        if let Some(picture) = latest.picture.as_mut()
            && let Err(error) = write(picture, &rects)
        {
            if resized {
                // The picture is blank now: whatever comes next must be copied whole.
                latest.pending = Some(Damage::Unknown);
            }
            return Err(error);
        }
        latest.pending = Some(match latest.pending.take() {
            None => damage,
            Some(before) => add_up(before, damage),
        });
        latest.frames += 1;
        drop(latest);
        self.changed.notify_all();
        Ok(())
    }

    /// The pointer moved or changed (every buffer says where it is, even one without pixels).
    pub fn put_pointer(&self, update: impl FnOnce(&mut Option<PointerState>)) {
        update(&mut self.latest().pointer);
    }

    /// The stream is over, for `why`.
    pub fn end(&self, why: impl Into<String>) {
        let mut latest = self.latest();
        if latest.ended.is_none() {
            latest.ended = Some(why.into());
        }
        drop(latest);
        self.changed.notify_all();
    }

    /// Brings `picture` up to date with the newest frame and says what changed in it. Waits up
    /// to `first_frame` for a first frame; after that, never waits.
    pub fn take(&self, picture: &mut Picture, first_frame: Duration) -> Result<Taken, TakeError> {
        let deadline = Instant::now() + first_frame;
        let mut latest = self.latest();
        while latest.frames == 0 && latest.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TakeError::NoFrame(first_frame));
            }
            latest = self
                .changed
                .wait_timeout(latest, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        if let Some(why) = &latest.ended {
            return Err(TakeError::Ended(why.clone()));
        }
        let pointer = latest.pointer.clone();
        let latest = &mut *latest;
        let Some(newest) = latest.picture.as_ref() else {
            return Err(TakeError::NoFrame(first_frame));
        };
        let resized = picture.width() != newest.width() || picture.height() != newest.height();
        let damage = if resized {
            *picture = newest.clone();
            latest.pending = None;
            Damage::Unknown
        } else {
            let damage = latest.pending.take().unwrap_or(Damage::Rects(Vec::new()));
            match &damage {
                Damage::Unknown => picture.copy_rect_from(newest, newest.bounds()),
                Damage::Rects(rects) => {
                    for rect in rects {
                        picture.copy_rect_from(newest, *rect);
                    }
                }
            }
            damage
        };
        Ok(Taken { damage, pointer })
    }
}

/// Why [`Mailbox::take`] has no picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    #[error("the screen cast sent no picture within {0:?}")]
    NoFrame(Duration),
    #[error("{0}")]
    Ended(String),
}

/// Both damages at once, bounded: many rectangles become their bounding box.
pub fn add_up(before: Damage, now: Damage) -> Damage {
    match (before, now) {
        (Damage::Rects(mut before), Damage::Rects(now)) => {
            before.extend(now);
            Damage::Rects(at_most(before, MAX_DAMAGE_RECTS))
        }
        _ => Damage::Unknown,
    }
}

/// A pointer image from a cursor bitmap; `serial` tells shapes apart.
pub fn pointer_shape(
    serial: u64,
    width: u32,
    height: u32,
    hot: (i32, i32),
    rgba: Vec<u8>,
) -> Arc<PointerShape> {
    Arc::new(PointerShape {
        serial,
        width,
        height,
        hot_x: hot.0.clamp(0, width as i32) as u32,
        hot_y: hot.1.clamp(0, height as i32) as u32,
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(rgb: [u8; 3]) -> impl FnOnce(&mut Picture, &[Rect]) -> Result<(), ()> {
        move |picture, rects| {
            let solid = Picture::filled(picture.width(), picture.height(), rgb);
            for rect in rects {
                picture.copy_rect_from(&solid, *rect);
            }
            Ok(())
        }
    }

    #[test]
    fn no_frame_yet_is_said_after_the_wait() {
        let mailbox = Mailbox::new();
        let mut picture = Picture::new(0, 0);
        assert_eq!(
            mailbox
                .take(&mut picture, Duration::from_millis(20))
                .map(|_| ()),
            Err(TakeError::NoFrame(Duration::from_millis(20)))
        );
    }

    #[test]
    fn a_frame_from_another_thread_wakes_the_first_take() {
        let mailbox = Mailbox::new();
        let writer = mailbox.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.put_frame(8, 4, Damage::Unknown, fill([1, 2, 3]))
        });
        let mut picture = Picture::new(0, 0);
        let taken = mailbox
            .take(&mut picture, Duration::from_secs(10))
            .expect("a frame");
        assert_eq!(taken.damage, Damage::Unknown);
        assert_eq!(picture.solid_colour(picture.bounds()), Some([1, 2, 3]));
        assert!(thread.join().is_ok());
    }

    #[test]
    fn damage_of_frames_between_looks_adds_up_and_only_it_is_copied() {
        let mailbox = Mailbox::new();
        let mut picture = Picture::new(0, 0);
        mailbox
            .put_frame(64, 64, Damage::Unknown, fill([0, 0, 0]))
            .expect("frame");
        mailbox.take(&mut picture, Duration::ZERO).expect("first");
        let a = Rect::new(0, 0, 8, 8);
        let b = Rect::new(32, 32, 8, 8);
        mailbox
            .put_frame(64, 64, Damage::Rects(vec![a]), fill([255, 0, 0]))
            .expect("frame");
        mailbox
            .put_frame(64, 64, Damage::Rects(vec![b]), fill([0, 255, 0]))
            .expect("frame");
        let taken = mailbox.take(&mut picture, Duration::ZERO).expect("second");
        assert_eq!(taken.damage, Damage::Rects(vec![a, b]));
        assert_eq!(picture.solid_colour(a), Some([255, 0, 0]));
        assert_eq!(picture.solid_colour(b), Some([0, 255, 0]));
        assert_eq!(
            picture.solid_colour(Rect::new(16, 16, 8, 8)),
            Some([0, 0, 0])
        );
        let still = mailbox.take(&mut picture, Duration::ZERO).expect("third");
        assert_eq!(still.damage, Damage::Rects(Vec::new()));
    }

    #[test]
    fn a_new_size_is_whole_damage() {
        let mailbox = Mailbox::new();
        let mut picture = Picture::new(0, 0);
        mailbox
            .put_frame(16, 16, Damage::Unknown, fill([9, 9, 9]))
            .expect("frame");
        mailbox.take(&mut picture, Duration::ZERO).expect("first");
        mailbox
            .put_frame(
                32,
                8,
                Damage::Rects(vec![Rect::new(0, 0, 1, 1)]),
                fill([7, 7, 7]),
            )
            .expect("frame");
        let taken = mailbox.take(&mut picture, Duration::ZERO).expect("resized");
        assert_eq!(taken.damage, Damage::Unknown);
        assert_eq!((picture.width(), picture.height()), (32, 8));
        assert_eq!(picture.solid_colour(picture.bounds()), Some([7, 7, 7]));
    }

    #[test]
    fn an_ended_stream_says_why_and_a_failed_write_counts_no_frame() {
        let mailbox = Mailbox::new();
        assert_eq!(
            mailbox.put_frame(4, 4, Damage::Unknown, |_, _| Err("torn")),
            Err("torn")
        );
        mailbox.end("the desktop stopped the screen cast");
        mailbox.end("later reasons do not replace the first");
        let mut picture = Picture::new(0, 0);
        assert_eq!(
            mailbox
                .take(&mut picture, Duration::from_secs(10))
                .map(|_| ()),
            Err(TakeError::Ended(
                "the desktop stopped the screen cast".to_owned()
            ))
        );
    }

    #[test]
    fn many_rectangles_become_their_bounding_box() {
        let many = Damage::Rects(
            (0..MAX_DAMAGE_RECTS as u32)
                .map(|i| Rect::new(i, i, 1, 1))
                .collect(),
        );
        let more = Damage::Rects(vec![Rect::new(100, 100, 1, 1)]);
        assert_eq!(
            add_up(many, more),
            Damage::Rects(vec![Rect::new(0, 0, 101, 101)])
        );
        assert_eq!(
            add_up(Damage::Unknown, Damage::Rects(Vec::new())),
            Damage::Unknown
        );
    }
}
