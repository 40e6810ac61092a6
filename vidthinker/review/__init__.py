"""Human review of a run's records: the reviews table, the sample a reviewer is shown, and the figures.

One module per job, each importing only those above it in this list:

* `table`: the append-only reviews table (`RUN/reviews/`): `Review`, `record_hash`, `append_review`,
  `read_reviews`, `default_reviewer`, `ReviewError`;
* `index`: the run's good records column-wise (`run_index`, `RunIndex`), their current content hashes
  (`current_hashes`) and each review's status (`review_status`: current, outdated, gone; `reviewed_ids`);
* `sample`: the seeded stratified sample (`draw_sample`, `SampleItem`) and its records (`fetch_records`);
* `figures`: reviewed precision with Wilson intervals and Cohen's kappa (`review_figures`, `RunReview`,
  `review_trend`, `ground_truth_beside`);
* `publishing`: the publish gate (`review_gate_failure`) and the dataset card's section (`card_section`).
"""

from vidthinker.review.figures import (
    GroupReview,
    Proportion,
    RunReview,
    cohen_kappa,
    ground_truth_beside,
    review_figures,
    review_trend,
    wilson,
)
from vidthinker.review.index import RunIndex, current_hashes, review_status, reviewed_ids, run_index
from vidthinker.review.publishing import card_section, review_gate_failure
from vidthinker.review.sample import SampleItem, draw_sample, fetch_records
from vidthinker.review.table import (
    REVIEWS_DIR,
    Review,
    ReviewError,
    append_review,
    default_reviewer,
    read_reviews,
    record_hash,
    reviews_dir,
)

__all__ = [
    "REVIEWS_DIR",
    "GroupReview",
    "Proportion",
    "Review",
    "ReviewError",
    "RunIndex",
    "RunReview",
    "SampleItem",
    "append_review",
    "card_section",
    "cohen_kappa",
    "current_hashes",
    "default_reviewer",
    "draw_sample",
    "fetch_records",
    "ground_truth_beside",
    "read_reviews",
    "record_hash",
    "review_figures",
    "review_gate_failure",
    "review_status",
    "review_trend",
    "reviewed_ids",
    "reviews_dir",
    "run_index",
    "wilson",
]
