"""The disentanglement metrics: hand-computed cases, and parity with disentanglement_lib's own
code (its metric modules, installed with `pip install --no-deps disentanglement-lib==1.5`)
on fixed representations of a small factor grid: the identity, a rotated mix, pure noise and
one factor missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.stats

from gen_models.metrics import disentanglement as metrics


class SmallGrid:
    """A factor grid whose observations are the factor indices themselves (as floats)."""

    factors_num_values = [4, 5, 6]
    num_factors = 3

    def sample_factors(self, num, random_state):
        return np.stack(
            [random_state.randint(n, size=num) for n in self.factors_num_values], axis=1
        )

    def sample_observations_from_factors(self, factors, random_state=None):
        return np.asarray(factors, np.float64)

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


ROTATION = scipy.stats.special_ortho_group.rvs(3, random_state=0)
NOISE = np.random.RandomState(1)
REPRESENTATIONS = {
    'identity': lambda x: x,
    'rotated': lambda x: x @ ROTATION,
    'noise': lambda x: NOISE.normal(size=x.shape),
    'missing_factor': lambda x: x[:, :2],
}


@pytest.fixture(scope='module')
def reference():
    """disentanglement_lib's metric modules (which import `gin.tf` for gin's decorators
    only), with the gin bindings of its study's metric configs."""
    gin = pytest.importorskip('gin', reason='gin-config is in the test extra')
    sys.modules.setdefault('gin.tf', gin)
    try:
        from disentanglement_lib.evaluation.metrics import (
            beta_vae,
            dci,
            factor_vae,
            mig,
            modularity_explicitness,
            sap_score,
            unsupervised_metrics,
            utils,
        )
    except ImportError as error:
        pytest.skip(f'disentanglement_lib is not installed ({error}); .ci/run installs it')
    gin.clear_config()
    gin.bind_parameter('discretizer.discretizer_fn', utils._histogram_discretize)
    gin.bind_parameter('discretizer.num_bins', 20)
    gin.bind_parameter('prune_dims.threshold', 0.05)
    return {
        'beta_vae': beta_vae,
        'dci': dci,
        'factor_vae': factor_vae,
        'mig': mig,
        'modularity': modularity_explicitness,
        'sap': sap_score,
        'unsupervised': unsupervised_metrics,
    }


@pytest.fixture(scope='module', params=sorted(REPRESENTATIONS))
def codes(request):
    """(name, train codes, train factors, test codes, test factors) of one representation."""
    state = np.random.RandomState(0)
    represent = REPRESENTATIONS[request.param]
    train = metrics.factor_codes(SmallGrid(), represent, 2000, state, batch_size=500)
    test = metrics.factor_codes(SmallGrid(), represent, 1000, state, batch_size=500)
    return request.param, *train, *test


def test_mig_equals_the_reference(reference, codes):
    _, train_codes, train_factors, _, _ = codes
    expected = reference['mig']._compute_mig(train_codes.T, train_factors.T)['discrete_mig']
    np.testing.assert_allclose(metrics.mig(train_codes, train_factors, 20), expected, rtol=1e-12)


def test_sap_equals_the_reference(reference, codes):
    _, *arrays = codes
    expected = reference['sap']._compute_sap(*(a.T for a in arrays), False)['SAP_score']
    np.testing.assert_allclose(metrics.sap(*arrays), expected, rtol=1e-9, atol=1e-12)


def test_dci_equals_the_reference(reference, codes):
    _, *arrays = codes
    expected = reference['dci']._compute_dci(*(a.T for a in arrays))
    ours = metrics.dci(*arrays)
    # Gradient boosting permutes features at each split (ties broken at random): 1e-2.
    for name, theirs in (
        ('dci_disentanglement', 'disentanglement'),
        ('dci_completeness', 'completeness'),
        ('dci_informativeness_train', 'informativeness_train'),
        ('dci_informativeness_test', 'informativeness_test'),
    ):
        np.testing.assert_allclose(ours[name], expected[theirs], atol=1e-2, err_msg=name)


def test_modularity_and_explicitness_equal_the_reference(reference, codes):
    name, *arrays = codes
    module = reference['modularity']
    ground_truth = SmallGrid()
    expected = module.compute_modularity_explicitness(
        ground_truth,
        REPRESENTATIONS[name] if name != 'noise' else _replay(arrays[0], arrays[2]),
        np.random.RandomState(0),
        num_train=2000,
        num_test=1000,
        batch_size=500,
    )
    ours = metrics.modularity_explicitness(*arrays, bins=20)
    np.testing.assert_allclose(ours['modularity'], expected['modularity_score'], rtol=1e-9)
    np.testing.assert_allclose(
        ours['explicitness_train'], expected['explicitness_score_train'], rtol=1e-6
    )
    np.testing.assert_allclose(
        ours['explicitness_test'], expected['explicitness_score_test'], rtol=1e-6
    )


def _replay(*code_sets):
    """A representation function returning fixed codes in order, 500 rows a call (the noise
    representation, whose draws must be the ones our metrics saw)."""
    rows = iter(np.concatenate(code_sets))
    return lambda x: np.stack([next(rows) for _ in range(len(x))])


def test_gaussian_total_correlation_equals_the_reference(reference, codes):
    _, train_codes, _, _, _ = codes
    if train_codes.shape[1] < 2:
        pytest.skip('one code dimension')
    expected = reference['unsupervised'].gaussian_total_correlation(np.cov(train_codes.T))
    ours = metrics.gaussian_total_correlation(train_codes)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('name', sorted(REPRESENTATIONS))
def test_beta_vae_score_agrees_with_the_reference(reference, name):
    """Both draw their own factors: equal to the sampling error of 500 eval points."""
    represent = REPRESENTATIONS[name]
    expected = reference['beta_vae'].compute_beta_vae_sklearn(
        SmallGrid(), represent, np.random.RandomState(0), None, 16, 1000, 500
    )['eval_accuracy']
    ours = metrics.beta_vae_score(SmallGrid(), represent, np.random.RandomState(0), 16, 1000, 500)
    assert abs(ours['beta_vae_score'] - expected) < 0.07, (ours, expected)
    if name == 'identity':
        assert ours['beta_vae_score'] == expected == 1.0
    if name == 'noise':
        assert abs(ours['beta_vae_score'] - 1 / 3) < 0.1


@pytest.mark.parametrize('name', sorted(REPRESENTATIONS))
def test_factor_vae_score_agrees_with_the_reference(reference, name):
    represent = REPRESENTATIONS[name]
    expected = reference['factor_vae'].compute_factor_vae(
        SmallGrid(), represent, np.random.RandomState(0), None, 16, 1000, 500, 1000
    )
    ours = metrics.factor_vae_score(
        SmallGrid(), represent, np.random.RandomState(0), 16, 1000, 500, 1000, 0.05
    )
    assert abs(ours['factor_vae_score'] - expected['eval_accuracy']) < 0.07, (ours, expected)
    if name == 'identity':
        assert ours['factor_vae_score'] == expected['eval_accuracy'] == 1.0


def test_mig_of_a_perfect_code_is_one_and_of_a_copied_code_zero():
    factors = np.stack(np.meshgrid(np.arange(4), np.arange(5), indexing='ij'), -1).reshape(-1, 2)
    factors = np.repeat(factors, 3, axis=0)
    assert metrics.mig(factors.astype(float), factors, bins=20) == pytest.approx(1.0)
    copied = np.stack([factors[:, 0], factors[:, 0]], axis=1).astype(float)
    # Both codes carry factor 0 wholly (gap 0) and nothing of factor 1: MIG 0.
    assert metrics.mig(copied, factors, bins=20) == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_matches_a_direct_count():
    rng = np.random.default_rng(0)
    codes, factors = rng.integers(0, 3, (500, 1)), rng.integers(0, 2, (500, 1))
    joint = np.histogram2d(codes[:, 0], factors[:, 0], bins=(3, 2))[0] / 500
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    expected = np.sum(joint * np.log(joint / outer))
    np.testing.assert_allclose(metrics.mutual_information(codes, factors)[0, 0], expected)


def test_modularity_of_one_factor_per_code_is_one_and_of_spread_information_zero():
    assert metrics.modularity(np.diag([1.0, 2.0, 0.5])) == pytest.approx(1.0)
    assert metrics.modularity(np.ones((3, 3))) == pytest.approx(0.0)
    # A code with no information scores 0, as in disentanglement_lib.
    assert metrics.modularity(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(0.5)


def test_gaussian_total_correlation_is_the_kl_to_the_product_of_marginals():
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    codes = np.random.default_rng(0).multivariate_normal([0, 0], cov, size=200_000)
    # KL(N(0, C) || N(0, diag C)) = -0.5 log(1 - rho^2) for two dimensions.
    rho2 = 0.6**2 / 2.0
    assert metrics.gaussian_total_correlation(codes) == pytest.approx(
        -0.5 * np.log(1 - rho2), rel=1e-2
    )


def test_the_fitted_metrics_repeat_exactly():
    """Same codes, same scores: the trees' and the SVMs' randomness is seeded."""
    state = np.random.RandomState(0)
    train = metrics.factor_codes(SmallGrid(), REPRESENTATIONS['rotated'], 300, state)
    test = metrics.factor_codes(SmallGrid(), REPRESENTATIONS['rotated'], 200, state)
    assert metrics.dci(*train, *test) == metrics.dci(*train, *test)
    assert metrics.sap(*train, *test) == metrics.sap(*train, *test)
