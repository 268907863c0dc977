"""The vectorised-trials benchmark on a tiny config: one row per group size, K = 1 the plain
step. Nothing here depends on how fast anything runs."""

from benchmarks import vectorize_benchmark
from tests.benchmarks.test_benchmark import tiny


def test_rows_per_group_size_and_table(data_dir):
    rows = vectorize_benchmark.measure(
        'vae_mlp_mnist', tiny('vae_mlp_mnist', data_dir), [1, 3], 2, 2
    )
    assert [(r['trials'], r['batch_size']) for r in rows] == [(1, 8), (3, 8)]
    assert rows[0]['vs_one_at_a_time'] == 1.0
    assert all(r['trial_steps_per_second'] > 0 for r in rows)
    table = vectorize_benchmark.markdown_table(rows)
    assert table.count('\n') == 3 and '| vae_mlp_mnist | 3 | 8 |' in table
