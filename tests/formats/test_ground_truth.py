from tests.test_schema import sample_rows
from vidthinker import formats
from vidthinker.schema import ManifestRow


def test_records_from_ground_truth_carry_the_truth():
    rows = sample_rows()[ManifestRow]
    records = formats.records_from_ground_truth(rows)
    assert len(records) == 1  # q1 has no ground truth
    assert records[0].frame_num == [2, 3, 4] and records[0].existence == "yes" and records[0].motion == "no"
