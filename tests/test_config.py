import pytest

from vidthinker.config import ConfigError, load_settings, parse_overrides


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("VIDTHINKER_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_papers():
    settings = load_settings()
    assert settings.video.clip_seconds == 5.0 and settings.video.grid_fps == 1.0


def test_precedence_flags_over_env_over_file(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[video]\nclip_seconds = 4\ngrid_fps = 2\njpeg_quality = 70\n")
    monkeypatch.setenv("VIDTHINKER_VIDEO__GRID_FPS", "3")
    monkeypatch.setenv("VIDTHINKER_VIDEO__JPEG_QUALITY", "75")
    settings = load_settings(cfg, ["video.jpeg_quality=90"])
    assert settings.video.clip_seconds == 4  # file
    assert settings.video.grid_fps == 3  # env beats file
    assert settings.video.jpeg_quality == 90  # flag beats env


def test_yaml_file_and_config_env(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synth:\n  videos: 3\n  seed: 7\n")
    monkeypatch.setenv("VIDTHINKER_CONFIG", str(cfg))
    settings = load_settings()
    assert (settings.synth.videos, settings.synth.seed) == (3, 7)


def test_errors_name_key_value_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDTHINKER_VIDEO__GRID_FPS", "-1")
    with pytest.raises(ConfigError) as error:
        load_settings(None, ["video.clip_seconds=zero"])
    text = str(error.value)
    assert "video.grid_fps = '-1'" in text and "environment VIDTHINKER_VIDEO__GRID_FPS" in text
    assert "video.clip_seconds = 'zero'" in text and "command line" in text


def test_file_errors(tmp_path):
    bad_key = tmp_path / "c.toml"
    bad_key.write_text("[video]\nclip_secs = 4\n")
    with pytest.raises(ConfigError, match=r"video.clip_secs = 4: Extra inputs are not permitted \(from config file"):
        load_settings(bad_key)
    bad_section = tmp_path / "d.toml"
    bad_section.write_text("[vidoe]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['vidoe'\]"):
        load_settings(bad_section)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "e.toml"
    broken.write_text("[video\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_settings(broken)


def test_cross_field_validation():
    with pytest.raises(ConfigError, match="max_seconds"):
        load_settings(None, ["synth.min_seconds=60", "synth.max_seconds=30"])


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["clip_seconds"])
    with pytest.raises(ConfigError, match="unknown section 'vid'"):
        parse_overrides(["vid.x=1"])
    assert parse_overrides(["video.allowed_roots=[/a, /b]"]) == {"video": {"allowed_roots": ["/a", "/b"]}}
