"""Decoding throughput of vidthinker.video against ffmpeg's own full decode of the same file.

Generates (and caches) 1280x720 H.264 30 fps test videos with ffmpeg, then times, per video:
  * ffmpeg decoding every frame (``ffmpeg -threads 0 -i f -f null -``): the "decode everything" baseline;
  * decode_frames on the 1-fps grid and on 512 uniformly spread video frames, with decord and PyAV,
    in-process (isolate=False) and in the worker process (isolate=True, worker already started).
Prints a markdown table; "vs ffmpeg" is ffmpeg's full-decode wall time divided by ours (> 1: pulling the
frames is that many times faster than decoding everything). Figures are ratios on this machine, not
promises.

    .venv/bin/python bench/decode.py                      # 60 s and 10 min videos
    .venv/bin/python bench/decode.py --durations 60 --gop 30
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidthinker import video


def make_video(workdir: Path, seconds: int, gop: int | None) -> Path:
    name = f"testsrc2_1280x720_30fps_{seconds}s" + (f"_g{gop}" if gop else "") + ".mp4"
    path = workdir / name
    if path.exists():
        return path
    partial = path.with_suffix(".partial.mp4")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-g", str(gop)] if gop else []
    started = time.perf_counter()
    subprocess.run([*cmd, str(partial)], check=True)
    partial.rename(path)  # only complete files are reused
    print(f"# made {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def ffmpeg_full_decode(path: Path) -> float:
    cmd = ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-threads", "0"]
    started = time.perf_counter()
    subprocess.run([*cmd, "-i", str(path), "-an", "-f", "null", "-"], check=True)
    return time.perf_counter() - started


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def versions() -> str:
    import av
    import decord

    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"decord {decord.__version__}, PyAV {av.__version__}, {ffmpeg.splitlines()[0].split(' Copyright')[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vidthinker-bench-decode",
                        help="where generated videos are cached (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--durations", type=int, nargs="+", default=[60, 600], help="video lengths in seconds"
    )
    parser.add_argument("--gop", type=int, default=None, help="x264 keyframe interval (default: x264's 250)")
    parser.add_argument(
        "--max-side", type=int, default=384, help="decode_frames max_side (default: %(default)s)"
    )
    parser.add_argument("--uniform", type=int, default=512, help="uniform frame count (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the best is reported")
    parser.add_argument("--backends", nargs="+", default=["decord", "pyav"], choices=["decord", "pyav"])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    worker = video.DecodeWorker()
    rows = []
    for seconds in args.durations:
        path = make_video(args.workdir, seconds, args.gop)
        info = video.probe(path)
        grid = video.grid_to_frame_index(info, range(video.grid_size(info)))
        uniform = video.uniform_indices(info.num_frames, args.uniform)
        ffmpeg_s = timed(lambda path=path: ffmpeg_full_decode(path), args.repeat)
        label = f"{seconds} s ({info.num_frames} fr, {path.stat().st_size / 1e6:.0f} MB)"
        rows.append((label, "all frames", "ffmpeg -f null", "-", info.num_frames, ffmpeg_s, 1.0))
        for task, indices in (("1-fps grid", grid), (f"{args.uniform} uniform", uniform)):
            for backend in args.backends:
                for isolate in (False, True):
                    if isolate:
                        started = time.perf_counter()
                        video.decode_frames(path, [0], backend=backend, worker=worker, info=info)
                        warm = time.perf_counter() - started
                        print(f"# worker ready, first call {warm:.2f} s", file=sys.stderr)

                    def run(indices=indices, backend=backend, isolate=isolate, path=path, info=info) -> None:
                        frames = video.decode_frames(
                            path, indices, backend=backend, isolate=isolate, max_side=args.max_side,
                            info=info, worker=worker, timeout_s=3600,
                        )  # fmt: skip
                        assert len(frames) == len(indices)

                    wall = timed(run, args.repeat)
                    mode = "isolated" if isolate else "in-process"
                    rows.append((label, task, backend, mode, len(indices), wall, ffmpeg_s / wall))
                    print(f"# {rows[-1]}", file=sys.stderr)
    worker.close()

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Machine: {versions()}; load average at the end {load} (shared machine: expect noise).")
    gop = args.gop or "x264 default (250)"
    print(
        f"Videos: testsrc2 1280x720 30 fps, libx264 -preset ultrafast, keyint {gop}; max_side={args.max_side}."
    )
    print()
    print("| video | frames pulled | decoder | mode | frames | wall s | frames/s | vs ffmpeg full decode |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for label, task, backend, mode, n, wall, ratio in rows:
        print(f"| {label} | {task} | {backend} | {mode} | {n} | {wall:.2f} | {n / wall:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":  # the decode worker re-imports this file under spawn
    main()
