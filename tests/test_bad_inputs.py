"""Bad inputs and unusable output folders give one line naming the path, never a traceback, and
never after model calls were paid: non-UTF-8 manifests, a video that cannot be stat'ed (its row's
error, not the manifest's), an out/shards/cache path that is a file, read-only or full, a disk that
fills while a shard is written, --limit < 1; and written files get normal modes (umask)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.engine.conftest import cli_sets
from vidthinker.cli import app
from vidthinker.formats import read_manifest
from vidthinker.schema import SchemaError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def flat(result) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def stub():
    from tests.servers.openai_stub import StubServer
    from tests.test_pipeline import scripted_model

    with StubServer(models=["scripted"]) as server:
        server.state.responder = scripted_model
        yield server


def annotate_args(stub, manifest: Path, out: Path, *sets: str) -> list[str]:
    flags = [a for s in [*cli_sets(stub.base_url), *sets] for a in ("--set", s)]
    return [*flags, "annotate", "--manifest", str(manifest), "--out", str(out)]


def one_video_manifest(synthetic_set: Path, path: Path, extra_rows: list[dict] = ()) -> Path:
    row = read_manifest(synthetic_set)[0]
    lines = [row.model_dump_json(exclude_none=True)] + [json.dumps(r) for r in extra_rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- manifests


def test_non_utf8_jsonl_manifest_names_file_line_and_column(tmp_path):
    path = tmp_path / "m.jsonl"
    qa = b'"qa": [{"qa_id": "q", "question": "What?", "answer": "x"}]'
    path.write_bytes(b'{"video_id": "a", "video": "a.mp4", ' + qa + b'}\n{"video_id": "caf\xe9", "video": "b.mp4"}\n')
    with pytest.raises(SchemaError) as info:
        read_manifest(path)
    assert str(info.value) == (f"{path} line 2: not UTF-8 text (byte 0xe9 at column 18); save the manifest as UTF-8")
    result = runner.invoke(app, ["annotate", "--manifest", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"{path} line 2: not UTF-8 text (byte 0xe9 at column 18)" in flat(result)
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_non_utf8_llava_json_manifest_names_file_line_and_column(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b'[\n  {"id": "x", "video": "v.mp4",\n   "conversations": [{"from": "human", "value": "\xff?"}]}\n]\n')
    with pytest.raises(SchemaError) as info:
        read_manifest(path)
    assert str(info.value) == f"{path} line 3: not UTF-8 text (byte 0xff at column 50); save the file as UTF-8"


def test_unreadable_parquet_manifest_is_one_line(tmp_path):
    path = tmp_path / "m.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match=rf"^{path}: not a readable parquet file \("):
        read_manifest(path)


# --------------------------------------------------------------------------- videos that cannot be stat'ed


def test_a_symlink_loop_fails_its_row_only(stub, synthetic_set, tmp_path):
    (tmp_path / "loop-a.mp4").symlink_to(tmp_path / "loop-b.mp4")
    (tmp_path / "loop-b.mp4").symlink_to(tmp_path / "loop-a.mp4")
    good = read_manifest(synthetic_set)[0]
    loop_row = {**json.loads(good.model_dump_json(exclude_none=True)), "video_id": "looped", "video": "loop-a.mp4"}
    manifest = one_video_manifest(synthetic_set, tmp_path / "m.jsonl", [loop_row])
    before = stub.count
    result = runner.invoke(app, annotate_args(stub, manifest, tmp_path / "run", "engine.shard_size=2"))
    assert result.exit_code == 0, result.output  # a permanent input error never fails the run
    records = [r for p in (tmp_path / "run" / "shards").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    looped = [r for r in records if r["video_id"] == "looped"]
    assert len(looped) == len(good.qa) and all(r["error_stage"] == "probe" for r in looped)
    assert {r["error"] for r in looped} == {"UnreadableVideo: cannot resolve the path: symbolic link loop"} or \
        all(r["error"].startswith("UnreadableVideo: cannot access the file (Too many levels of symbolic links")
            for r in looped)  # Python >= 3.13 resolves loops without raising; stat() then says ELOOP
    assert all(r["error_class"] == "permanent" for r in looped)
    assert all(r["error"] is None for r in records if r["video_id"] == good.video_id)
    assert stub.count > before  # the good row was annotated


def test_a_video_behind_a_locked_folder_is_its_rows_error(synthetic_set, tmp_path):
    """Permission denied on stat. Root passes every permission check, so as root the probe runs with the
    capabilities that let it do so dropped (setpriv)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(read_manifest(synthetic_set)[0].video, locked / "v.mp4")
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv(1): cannot make a permission check fail")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    code = ("from vidthinker.config import VideoSettings; from vidthinker.planning import plan_video; "
            "from vidthinker.schema import ManifestRow, QAPair; import sys; "
            "row = ManifestRow(video_id='v', video=sys.argv[1], qa=[QAPair(qa_id='q', question='q?', answer='a')]); "
            "print(plan_video(row, VideoSettings()).error)")
    locked.chmod(0o000)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-c", code, str(locked / "v.mp4")], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "UnreadableVideo: cannot access the file (Permission denied)"


# --------------------------------------------------------------------------- output folders, before paying


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("run", "run folder {out}: not a directory (a file is in the way)"),
        ("shards", "shard folder {out}/shards: not a directory (a file is in the way)"),
        ("cache", "cache folder {cache}: not a directory (a file is in the way)"),
    ],
)
def test_an_output_path_that_is_a_file_stops_before_any_call(stub, synthetic_set, tmp_path, where, message):
    out, cache = tmp_path / "run", tmp_path / "cache"
    if where == "run":
        out.write_text("a file")
    elif where == "shards":
        out.mkdir()
        (out / "shards").write_text("a file")
    else:
        cache.write_text("a file")
    before = stub.count
    result = runner.invoke(app, annotate_args(stub, synthetic_set, out, f"annotate.cache_dir={cache}"))
    assert result.exit_code == 2, result.output
    assert f"error: {message.format(out=out, cache=cache)}" in flat(result)
    assert "Traceback" not in result.output and stub.count == before


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str):
    """A small tmpfs at path (root only); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount(8) to make a small or read-only file system")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_run_folder_stops_before_any_call(stub, synthetic_set, tmp_path):
    if os.geteuid() != 0:  # an unprivileged user meets a folder without write permission
        out = tmp_path / "run"
        out.mkdir()
        out.chmod(0o555)
        expected = f"error: run folder {out}: permission denied (not writable)"
        mounted = contextlib.nullcontext(out)
    else:  # root writes anywhere the file system allows: mount a read-only one
        out = tmp_path / "run"
        expected = f"error: run folder {out}: read-only file system"
        mounted = tmpfs(out, "1m", "ro")
    with mounted:
        before = stub.count
        result = runner.invoke(app, annotate_args(stub, synthetic_set, out, f"annotate.cache_dir={tmp_path / 'cache'}"))
        assert result.exit_code == 2, result.output
        assert expected in flat(result) and "Traceback" not in result.output and stub.count == before


def test_too_little_free_space_stops_before_any_call(stub, synthetic_set, tmp_path, monkeypatch):
    import vidthinker.preflight as preflight

    real = shutil.disk_usage
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: real(p)._replace(free=3 * 1024 * 1024))
    before = stub.count
    out = tmp_path / "run"
    result = runner.invoke(app, annotate_args(stub, synthetic_set, out, "engine.shard_size=1"))
    assert result.exit_code == 2, result.output
    # 3 shards of 1 video: 1 MB for the run folder + 4 MB per shard for the shards and as much for the cache
    assert (f"error: run folder {out}: only 3.0 MB free, the run needs about 25 MB (4 MB per shard); free some space "
            "or choose another folder") in flat(result)
    assert stub.count == before


def test_a_disk_that_fills_while_a_shard_is_written_fails_that_shard_in_one_line(stub, synthetic_set, tmp_path):
    """A real ENOSPC: the run folder is an 8 MB tmpfs that the stub fills up at the first model call."""
    out = tmp_path / "run"
    manifest = one_video_manifest(synthetic_set, tmp_path / "m.jsonl")
    with tmpfs(out, "8m"):
        responder = stub.state.responder

        def fill_then_answer(body):
            filler = out / "filler"
            if not filler.exists():
                with open(filler, "wb") as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            return responder(body)

        stub.state.responder = fill_then_answer
        try:
            proc = subprocess.run([sys.executable, "-m", "vidthinker.cli",
                                   *annotate_args(stub, manifest, out, f"annotate.cache_dir={tmp_path / 'cache'}")],
                                  capture_output=True, text=True, timeout=600, cwd=tmp_path,
                                  env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
        finally:
            stub.state.responder = responder
        text = proc.stdout + proc.stderr
        assert proc.returncode == 1, text
        assert "Traceback" not in text and "Errno" not in text
        failed = [line for line in text.splitlines() if line.startswith("shard failed ")]
        assert len(failed) == 1, text
        assert failed[0].endswith(".parquet: no space left on device") and f": cannot write {out}/shards/shard-" in failed[0]
        assert f"run summary {out}/summary.json not written: no space left on device" in text
        assert not list((out / "shards").glob("*.parquet"))


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("command", [["annotate"], ["select"], ["eval"]])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_limit_below_one_is_refused(command, value):
    result = runner.invoke(app, [*command, "--limit", value])
    assert result.exit_code == 2
    assert "Invalid value for '--limit': Input should be greater than or equal to 1" in flat(result)


# --------------------------------------------------------------------------- file modes


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writers_give_files_the_umask_mode(tmp_path, mask):
    from vidthinker.io import atomic_write_text
    from vidthinker.shards import write_shard
    from vidthinker.orchestration import ledger

    writers = {
        "shard": lambda p: write_shard([], p),  # parquet and manifest through vidthinker.io
        "ledger": lambda p: _write_ledger_to(ledger, p),  # the ledger's own write (locked_ledger), moved to p
        "quality": lambda p: atomic_write_text(p, "x"),  # quality writes its figures and caches through vidthinker.io
        "synth": lambda p: atomic_write_text(p, "x"),  # synth writes all its files through vidthinker.io
    }
    old = os.umask(mask)
    try:
        for name, write in writers.items():
            path = tmp_path / f"{mask:o}" / f"{name}.txt"
            path.parent.mkdir(exist_ok=True)
            write(path)
            assert path.stat().st_mode & 0o777 == 0o666 & ~mask, name
    finally:
        os.umask(old)


def _write_ledger_to(ledger, path):
    with ledger.locked_ledger(path.parent) as book:
        book.videos["v"] = ledger.VideoEntry(shard="s", run="r", fingerprint="f", records=1)
    os.replace(ledger.ledger_path(path.parent), path)


def test_a_run_writes_shards_manifests_and_summary_with_normal_modes(stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, annotate_args(stub, one_video_manifest(synthetic_set, tmp_path / "m.jsonl"), out))
    assert result.exit_code == 0, result.output
    mask = os.umask(0)
    os.umask(mask)
    written = [out / "summary.json", *(out / "shards").glob("*.parquet"), *(out / "shards").glob("*.manifest.json")]
    assert len(written) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~mask)}


def test_describe_error_is_one_redacted_line():
    from vidthinker.preflight import describe_error

    error = OSError(errno.ENOSPC, "No space left on device", "/x/.shard.parquet.tmp")
    assert describe_error(error, path="/x/shard.parquet") == "cannot write /x/shard.parquet: no space left on device"
    assert describe_error(RuntimeError("at http://u:secretpw1@h/v1")) == "RuntimeError: at http://***@h/v1"
