//! What a frame carries while the share is in video: the video start, the pictures since the
//! last keyframe, and which run of video it belongs to; and, after a run, where the pages that
//! watched it left their canvas.

use std::sync::Arc;

use crate::video::track::{VideoPicture, VideoStart};

/// A run of frames the share published as video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoRun {
    /// Its first frame.
    pub first: u64,
    /// Its last frame (so far, for the run a frame belongs to).
    pub last: u64,
    /// The frame before it: a video page's canvas shows this one under the video.
    pub base: u64,
}

/// A frame's video: everything a page needs to show it, from wherever the page stands.
#[derive(Clone, Debug)]
pub struct FrameVideo {
    pub run: VideoRun,
    pub start: Arc<VideoStart>,
    /// The pictures from the last keyframe to this frame, the keyframe first.
    pub pictures: Arc<[VideoPicture]>,
    /// The group of pictures before the keyframe, when the same encoder made both: a page that
    /// fell a little behind just as a keyframe came goes on from where it is.
    pub earlier: Arc<[VideoPicture]>,
}

impl FrameVideo {
    /// The frame of the last keyframe.
    pub fn keyframe_seq(&self) -> u64 {
        self.pictures
            .first()
            .map_or(self.run.first, |picture| picture.seq)
    }

    /// Whether a page that took frame `after` of this run over the same stream can go on from
    /// there: it has every picture of the run up to `after`, and the pictures after it are still
    /// kept (since the keyframe, or in the group before it).
    pub fn continues_from(&self, after: u64, run_seen: Option<u64>) -> bool {
        run_seen == Some(self.run.first)
            && after < self.run.last
            && (after >= self.keyframe_seq()
                || self.earlier.first().is_some_and(|first| after >= first.seq))
    }

    /// The pictures after frame `after`, oldest first: from the group before the keyframe too,
    /// for a page still in it.
    pub fn pictures_after(&self, after: u64) -> impl Iterator<Item = &VideoPicture> {
        let earlier = if after < self.keyframe_seq() {
            &self.earlier[..]
        } else {
            &[]
        };
        earlier
            .iter()
            .chain(self.pictures.iter())
            .filter(move |picture| picture.seq > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pictures(seqs: std::ops::RangeInclusive<u64>) -> Arc<[VideoPicture]> {
        let first = *seqs.start();
        seqs.map(|seq| VideoPicture {
            seq,
            keyframe: seq == first,
            segment: Bytes::from(seq.to_le_bytes().to_vec()),
        })
        .collect()
    }

    fn video(earlier: Arc<[VideoPicture]>, current: Arc<[VideoPicture]>) -> FrameVideo {
        let last = current.last().map_or(0, |picture| picture.seq);
        FrameVideo {
            run: VideoRun {
                first: 100,
                last,
                base: 99,
            },
            start: Arc::new(VideoStart {
                codec: "avc1.42c01f".to_owned(),
                init: Bytes::new(),
                width: 2,
                height: 2,
            }),
            pictures: current,
            earlier,
        }
    }

    fn seqs<'a>(pictures: impl Iterator<Item = &'a VideoPicture>) -> Vec<u64> {
        pictures.map(|picture| picture.seq).collect()
    }

    #[test]
    fn a_stream_a_little_behind_at_a_keyframe_goes_on_without_starting_again() {
        // Keyframe at 160, the group before it from 100.
        let frame = video(pictures(100..=159), pictures(160..=162));
        let run = Some(100);
        assert!(frame.continues_from(161, run));
        assert_eq!(seqs(frame.pictures_after(161)), vec![162]);
        assert!(frame.continues_from(157, run), "three frames behind");
        assert_eq!(
            seqs(frame.pictures_after(157)),
            vec![158, 159, 160, 161, 162]
        );
        assert!(frame.continues_from(100, run));
        assert!(!frame.continues_from(99, run), "before the run");
        assert!(!frame.continues_from(158, Some(50)), "another run");
        assert!(!frame.continues_from(158, None), "a new stream");
        assert!(!frame.continues_from(162, run), "nothing new");
    }

    #[test]
    fn after_a_new_encoder_only_the_new_group_counts() {
        let frame = video(Arc::new([]), pictures(160..=162));
        assert!(!frame.continues_from(158, Some(100)), "needs the new start");
        assert!(frame.continues_from(160, Some(100)));
        assert_eq!(seqs(frame.pictures_after(160)), vec![161, 162]);
    }
}
