import pytest

from vidthinker import formats
from vidthinker.schema import SchemaError


def test_record_paths_errors(tmp_path):
    with pytest.raises(SchemaError, match="no such shard folder"):
        formats.record_paths(tmp_path / "nope")
    with pytest.raises(SchemaError, match="no parquet shards found"):
        formats.record_paths(tmp_path)
