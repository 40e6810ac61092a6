"""What a planned scene shows, in words and numbers: the truth file and one caption per 5 s clip.

`scene_truth` is the JSON written to ``truth/<video_id>.json``: every object's times, path and per-second
positions, every word's box and times, the background, and the rules that tie them to pixels; it is
enough to re-check any frame. `clip_descriptions` gives the manifest's per-clip sentences, consistent
with the same script.
"""

from __future__ import annotations

from vidthinker.synth.drawing import drawn_area
from vidthinker.synth.scene import CLIP_SECONDS, DIRECTION_PHRASE, GENERATOR, PALETTE, Scene


def scene_truth(scene: Scene, encoder: str) -> dict:
    """The truth file of `scene` (written as JSON); `encoder` names the H.264 backend that made the video."""
    d = scene.duration
    return {
        "generator": GENERATOR,
        "video_id": scene.video_id,
        "video": f"videos/{scene.video_id}.mp4",
        "seed": scene.seed,
        "index": scene.index,
        "width": scene.width,
        "height": scene.height,
        "fps": scene.fps,
        "duration_s": d,
        "num_frames": scene.num_frames,
        "num_grid_frames": d,
        "clip_seconds": CLIP_SECONDS,
        "num_clips": scene.num_clips,
        "encoder": encoder,
        "rules": {
            "grid": "grid frame k = video frame round(k * fps) at t = k s",
            "visible": "an object is drawn in video frame i iff appear_s <= i / fps < disappear_s",
            "position": "centre(t) = start + dir * speed_px_s * (clamp(t, start_s, end_s) - start_s); "
            "drawn at floor(centre + 0.5); x right, y down, pixels",
            "shapes": "radius_px is the circumscribed radius; square half-side = floor(r / sqrt 2); "
            "triangle and star point up",
            "text": "black word in a white box [x0, y0, x1, y1) shown iff start_s <= t < end_s",
        },
        "text_band": list(scene.text_band),
        "object_area": list(scene.object_area),
        "background": scene.background,
        "objects": [
            {
                "id": o.object_id,
                "name": o.name,
                "shape": o.shape,
                "colour": o.colour,
                "rgb": list(PALETTE[o.colour]),
                "size": o.size,
                "radius_px": o.radius,
                "area_px": drawn_area(o),
                "appear_s": o.appear_s,
                "disappear_s": o.disappear_s,
                "start": [o.x0, o.y0],
                "motion": None
                if o.motion is None
                else {
                    "direction": o.motion.direction,
                    "start_s": o.motion.start_s,
                    "end_s": o.motion.end_s,
                    "speed_px_s": o.motion.speed,
                    "from": [o.x0, o.y0],
                    "to": list(o.end_position()),
                    "grid_ids": o.moving_grid_ids(d),
                },
                "grid_ids": o.grid_ids(d),
                "positions": [
                    {"t": k, "x": o.position_at(k)[0], "y": o.position_at(k)[1]} for k in o.grid_ids(d)
                ],
            }
            for o in scene.objects
        ],
        "texts": [
            {
                "id": t.text_id,
                "word": t.word,
                "start_s": t.start_s,
                "end_s": t.end_s,
                "box": list(t.box),
                "grid_ids": t.grid_ids(d),
            }
            for t in scene.texts
        ],
    }


def clip_descriptions(scene: Scene) -> list[str]:
    """One sentence per 5 s clip describing what is visible and what happens, consistent with the script."""
    sentences = []
    for c in range(scene.num_clips):
        lo2, hi2 = 2 * CLIP_SECONDS * c, 2 * min(CLIP_SECONDS * (c + 1), scene.duration)
        events: list[tuple[int, str]] = []
        for o in scene.objects:
            if not (o.appear2 < hi2 and o.disappear2 > lo2):
                continue
            parts = []
            if o.appear2 >= lo2:
                parts.append("appears")
            else:
                parts.append("is visible")
            m = o.motion
            if m is not None and m.start2 < hi2 and m.end2 > lo2:
                verb = "keeps moving" if m.start2 < lo2 else "moves"
                parts.append(f"{verb} {DIRECTION_PHRASE[m.direction]}")
                if m.end2 < hi2 and m.end2 < o.disappear2:
                    parts.append("stops")
            if o.disappear2 < hi2:
                parts.append("disappears")
            phrase = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
            events.append((max(o.appear2, lo2), f"a {o.size} {o.name} {phrase}"))
        for t in scene.texts:
            if t.start2 < hi2 and t.end2 > lo2:
                when = "appears" if t.start2 >= lo2 else "is shown"
                tail = " and disappears" if t.end2 < hi2 else ""
                events.append((max(t.start2, lo2), f'the word "{t.word}" {when}{tail}'))
        events.sort(key=lambda e: e[0])
        body = "; ".join(e[1] for e in events) if events else "only the background is visible"
        sentences.append(f"Over {scene.bg_phrase}, {body}.")
    return sentences
