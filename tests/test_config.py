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


def test_every_section_takes_its_environment_variables():
    env = {
        "VIDTHINKER_AIRFLOW__SCHEDULE": "none", "VIDTHINKER_AIRFLOW__OUT_DIR": "/srv/vt",
        "VIDTHINKER_TRAIN_EVAL__EVAL_SETS": "a.jsonl, b.json", "VIDTHINKER_TRAIN_EVAL__KS": "4,8",
        "VIDTHINKER_TRAIN_EVAL__CONFIG_OVERRIDES": '{"max_steps": 10}', "VIDTHINKER_TRAIN_EVAL__PRESET": "null",
        "VIDTHINKER_PUBLISH__REPO_ID": "org/name", "VIDTHINKER_PUBLISH__DATA_FILE_MB": "0.5",
        "VIDTHINKER_DASHBOARD__OUT_DIR": "/srv/runs", "VIDTHINKER_REVIEW__REVIEWER": "ana",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        s = load_settings()
    assert s.airflow.schedule is None and str(s.airflow.out_dir) == "/srv/vt"
    assert s.train_eval.eval_sets == ["a.jsonl", "b.json"] and s.train_eval.ks == [4, 8]
    assert s.train_eval.config_overrides == {"max_steps": 10} and s.train_eval.preset is None
    assert (s.publish.repo_id, s.publish.data_file_mb) == ("org/name", 0.5)
    assert str(s.dashboard.out_dir) == "/srv/runs" and s.review.reviewer == "ana"


def test_new_sections_keep_the_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[publish]\nrepo_id = "file/repo"\ndata_file_mb = 64\n[train_eval]\nks = [4, 16]\n'
                   '[airflow]\nretries = 1\npool = "file_pool"\n')
    monkeypatch.setenv("VIDTHINKER_PUBLISH__REPO_ID", "env/repo")
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__RETRIES", "2")
    s = load_settings(cfg, ["publish.repo_id=flag/repo"])
    assert s.publish.repo_id == "flag/repo" and s.publish.data_file_mb == 64  # flag > env > file
    assert s.airflow.retries == 2 and s.airflow.pool == "file_pool" and s.train_eval.ks == [4, 16]


def test_bad_values_of_new_sections_name_their_variable(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_PUBLISH__DATA_FILE_MB", "0")
    monkeypatch.setenv("VIDTHINKER_TRAIN_EVAL__KS", "4,eight")
    with pytest.raises(ConfigError) as error:
        load_settings()
    text = str(error.value)
    assert "publish.data_file_mb = '0'" in text and "environment VIDTHINKER_PUBLISH__DATA_FILE_MB" in text
    assert "train_eval.ks.1" in text and "environment VIDTHINKER_TRAIN_EVAL__KS" in text
    monkeypatch.setenv("VIDTHINKER_TRAIN_EVAL__CONFIG_OVERRIDES", "{not json")
    monkeypatch.delenv("VIDTHINKER_TRAIN_EVAL__KS")
    with pytest.raises(ConfigError, match="train_eval"):
        load_settings()


def test_one_section_loads_despite_a_bad_other_section(monkeypatch):
    from vidthinker.config import load_section

    monkeypatch.setenv("VIDTHINKER_VIDEO__GRID_FPS", "-1")
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__RETRIES", "7")
    with pytest.raises(ConfigError, match="video.grid_fps"):
        load_settings()
    assert load_section("airflow").retries == 7
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__RETRIES", "many")
    with pytest.raises(ConfigError, match="environment VIDTHINKER_AIRFLOW__RETRIES"):
        load_section("airflow")
    with pytest.raises(ConfigError, match="unknown settings section 'airflw'"):
        load_section("airflw")


def test_command_settings_flags_over_set_over_env(monkeypatch):
    from types import SimpleNamespace

    from vidthinker.config import load_command_settings

    monkeypatch.setenv("VIDTHINKER_SYNTH__VIDEOS", "3")
    ctx = SimpleNamespace(obj={"config": None, "overrides": ["synth.seed=5", "synth.videos=4"]})
    s = load_command_settings(ctx, synth__videos=None, synth__min_seconds=30)
    assert (s.synth.videos, s.synth.seed, s.synth.min_seconds) == (4, 5, 30)  # an unset flag leaves --set
    assert load_command_settings(SimpleNamespace(obj=None)).synth.videos == 3


def test_secrets_come_from_the_environment_only(tmp_path, monkeypatch):
    from vidthinker.config import api_key_from_environment

    assert api_key_from_environment() is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret-1234")
    assert api_key_from_environment() == "sk-openai-secret-1234"
    monkeypatch.setenv("VIDTHINKER_API_KEY", "vt-secret-5678")
    assert api_key_from_environment() == "vt-secret-5678"  # ours first
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models]\napi_key = "in-a-file"\n')
    with pytest.raises(ConfigError, match="models.api_key"):  # no section holds a secret
        load_settings(cfg)


def test_config_show_lists_every_section_and_no_secret(monkeypatch):
    import json

    from typer.testing import CliRunner

    from vidthinker.cli import app

    monkeypatch.setenv("VIDTHINKER_API_KEY", "vt-secret-5678")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_abcdefgh")
    monkeypatch.setenv("VIDTHINKER_PUBLISH__REPO_ID", "org/name")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert {"airflow", "train_eval", "publish", "dashboard", "review"} <= set(shown)
    assert shown["publish"]["repo_id"] == "org/name" and shown["train_eval"]["ks"] == [4, 8, 16, 32]
    assert "vt-secret-5678" not in result.output and "hf_secret_abcdefgh" not in result.output
