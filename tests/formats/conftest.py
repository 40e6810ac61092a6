from pathlib import Path

import pytest

from tests.formats.release_samples import ACADEMIC_OE, CAPTIONS, NEXTQA_MC, NEXTQA_OE, write_json


@pytest.fixture
def llava_release(tmp_path) -> Path:
    """A LLaVA-Video-178K folder with two subsets (mc + oe + captions, and oe only)."""
    root = tmp_path / "LLaVA-Video-178K"
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_mc_qa_processed.json", NEXTQA_MC)
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_oe_qa_processed.json", NEXTQA_OE)
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_cap_processed.json", CAPTIONS)
    write_json(root / "30_60_s_academic_v0_1" / "30_60_s_academic_oe_v0_1_qa_processed.json", ACADEMIC_OE)
    return root
