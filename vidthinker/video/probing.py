"""``probe``: validate a local video and read its metadata (PyAV, in-process), naming what is wrong."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from pathlib import Path

import av

from vidthinker.video.errors import (
    CorruptVideo,
    EmptyVideo,
    NotAVideo,
    PathLike,
    UnreadableVideo,
    UnsupportedVideo,
    VideoNotFound,
)
from vidthinker.video.grid import VideoInfo
from vidthinker.video.paths import check_allowed

# Stop looking for a first decodable frame after this many packets (bounds probe time on garbage).
_PROBE_MAX_PACKETS = 600


# Leading bytes of container formats that carry video. A file that starts like one of these but cannot
# be opened is damaged (CorruptVideo), not some other kind of file (NotAVideo).
def _sniff_container(head: bytes) -> str | None:
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV"):
        return "FLV"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    return None


def _check_isobmff(path: Path, size: int) -> tuple[str | None, bool]:
    """Walk the top-level MP4 boxes; return (why the file is truncated or None, whether a track
    declares itself video).

    FFmpeg opens an MP4 whose data was cut short (moov first, mdat cut) as if it were whole, and decord
    then fails or misbehaves only when it reaches the missing bytes. The box sizes tell us up front, for
    the price of a few small reads. The handler check lets a damaged index that FFmpeg can no longer
    read as video be told apart from an audio-only file.
    """
    seen: set[bytes] = set()
    moov: tuple[int, int] | None = None
    offset = 0
    with path.open("rb") as f:
        for _ in range(100_000):  # bounds the walk on adversarial input
            if offset + 8 > size:
                break
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            name = box_type.decode("latin-1")
            header_len = 8
            if box_size == 1:
                if len(header) < 16:
                    return f"truncated: the '{name}' box header at offset {offset} is cut short", False
                (box_size,) = struct.unpack(">Q", header[8:16])
                header_len = 16
            elif box_size == 0:  # "extends to the end of the file"
                box_size = size - offset
            if box_size < header_len:
                problem = (
                    f"damaged MP4 structure: box '{name}' at offset {offset} has an invalid size {box_size}"
                )
                return problem, False
            if offset + box_size > size:
                problem = (
                    f"truncated: the '{name}' box at offset {offset} declares {box_size} bytes but only "
                    f"{size - offset} remain (file cut short or still being written?)"
                )
                return problem, False
            seen.add(box_type)
            if box_type == b"moov" and moov is None:
                moov = (offset, box_size)
            offset += box_size
        if moov is None:
            if b"moof" in seen:  # fragmented MP4 whose index lives in fragments: nothing to check here
                return None, False
            return (
                "truncated MP4: no 'moov' box (the index is missing; file cut short or still being written?)",
                False,
            )
        f.seek(moov[0])
        index = f.read(min(moov[1], 64 << 20))
    # A 'hdlr' box is [size][b"hdlr"][version/flags][pre_defined][handler type], e.g. b"vide".
    at = index.find(b"hdlr")
    while at != -1:
        if index[at + 12 : at + 16] == b"vide":
            return None, True
        at = index.find(b"hdlr", at + 4)
    return None, False


def pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    # Cover art in audio files shows up as a one-frame "video" stream flagged attached_pic.
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _rotation_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    # Frames carry the display matrix as side data (PyAV reports it counter-clockwise). Very old muxers
    # left only a "rotate" tag, which counts clockwise.
    ccw = round(getattr(frame, "rotation", 0) or 0)  # PyAV >= 13
    if ccw == 0 and "rotate" in stream.metadata:
        try:
            ccw = -int(float(stream.metadata["rotate"]))
        except ValueError:
            ccw = 0
    ccw %= 360
    return ccw if ccw in (0, 90, 180, 270) else 90 * round(ccw / 90) % 360


def _open_container(path: Path, shown: PathLike, kind: str | None) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as err:
        detail = getattr(err, "strerror", None) or str(err)
        if kind is not None:
            raise CorruptVideo(shown, f"looks like {kind} but FFmpeg cannot open it ({detail})") from None
        raise NotAVideo(shown, f"not a media file FFmpeg can open ({detail})") from None


def probe(path: PathLike, *, allowed_roots: Iterable[PathLike] | PathLike | None = None) -> VideoInfo:
    """Validate a local video and read its metadata; decodes its first frame to prove it decodes.

    Raises, in the order checked: ``UnsupportedVideo`` (remote URI), ``VideoPathNotAllowed``,
    ``VideoNotFound``, ``EmptyVideo`` (0 bytes), ``CorruptVideo`` (MP4 boxes cut short, or a video
    container FFmpeg cannot open), ``NotAVideo`` (not media, still image, no video stream),
    ``EmptyVideo`` (no frames / zero duration), ``CorruptVideo`` (no frame decodes).
    Runs in-process: FFmpeg's demuxers are robust; the risky part (decord) only runs in ``decode_frames``.
    """
    resolved = check_allowed(path, allowed_roots)
    try:
        st = resolved.stat()
    except FileNotFoundError:
        raise VideoNotFound(path, "file not found") from None
    except OSError as err:  # ELOOP, EACCES, EIO: this row's error, not the manifest's
        raise UnreadableVideo(path, f"cannot access the file ({err.strerror or err})") from None
    if resolved.is_dir():
        raise NotAVideo(path, "is a directory, not a video file")
    if st.st_size == 0:
        raise EmptyVideo(path, "file is empty (0 bytes)")
    try:
        with resolved.open("rb") as f:
            head = f.read(512)
    except OSError as err:
        raise UnreadableVideo(path, f"cannot read the file ({err.strerror})") from None
    kind = _sniff_container(head)
    declares_video = False
    if kind == "MP4/MOV":
        problem, declares_video = _check_isobmff(resolved, st.st_size)
        if problem:
            raise CorruptVideo(path, problem)

    with _open_container(resolved, path, kind) as container:
        fmt = container.format.name
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise NotAVideo(path, f"a still image ({fmt}), not a video")
        stream = pick_video_stream(container)
        if stream is None:
            if declares_video:
                raise CorruptVideo(
                    path, "the MP4 index declares a video track that FFmpeg cannot read (damaged?)"
                )
            if not container.streams:
                raise EmptyVideo(path, "the file contains no audio or video streams (nothing was recorded?)")
            if kind is not None and not container.streams.audio:
                # A video container whose tracks read as neither audio nor video: its index is damaged.
                raise CorruptVideo(
                    path, f"no readable audio or video stream in this {kind} file (damaged index?)"
                )
            extra = " (only cover art)" if container.streams.video else ""
            raise NotAVideo(path, f"no video stream (audio-only?){extra}")
        has_audio = bool(container.streams.audio)
        codec = stream.codec_context.codec.canonical_name
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0

        duration_s: float | None = None
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        num_frames = int(stream.frames or 0)
        estimated = False

        first, packets = _first_frame(container, stream, path)
        if packets == 0:
            raise EmptyVideo(path, "the video stream contains no frames")
        if first is None:
            raise CorruptVideo(path, f"no frame decodes in the first {packets} packets of the video stream")
        rotation = _rotation_of(first, stream)
        coded_w, coded_h = first.width, first.height

    if fps <= 0 and num_frames > 0 and duration_s:
        fps = num_frames / duration_s
    if fps <= 0:
        raise UnsupportedVideo(path, "the video stream has no frame rate")
    if num_frames <= 0:
        if duration_s is None:
            num_frames = _count_packets(resolved, path)
        else:
            num_frames = max(1, math.floor(duration_s * fps + 0.5))
            estimated = True
    if duration_s is None:
        duration_s = num_frames / fps
    if duration_s <= 0:
        raise EmptyVideo(path, "zero duration")
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        path=str(resolved),
        duration_s=duration_s,
        fps=fps,
        num_frames=num_frames,
        width=width,
        height=height,
        codec=codec,
        rotation=rotation,
        container=fmt,
        has_audio=has_audio,
        num_frames_estimated=estimated,
    )


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, shown: PathLike
) -> tuple[av.VideoFrame | None, int]:
    """Decode until the first frame; return it (or None) and the number of packets read."""
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            # The empty packet at EOF flushes frames the decoder still holds back (B-frame delay).
            for frame in packet.decode():
                return frame, packets
            if packets >= _PROBE_MAX_PACKETS:
                break
    except av.FFmpegError as err:
        if packets == 0:
            raise CorruptVideo(shown, f"cannot read the video stream ({err})") from None
        raise CorruptVideo(shown, f"decoding the first frame failed ({err})") from None
    return None, packets


def _count_packets(path: Path, shown: PathLike) -> int:
    # Only for streams that state neither a frame count nor a duration (raw elementary streams).
    count = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = pick_video_stream(container)
            assert stream is not None
            for packet in container.demux(stream):
                count += packet.size > 0
    except av.FFmpegError as err:
        raise CorruptVideo(shown, f"reading the video stream failed after {count} frames ({err})") from None
    return count
