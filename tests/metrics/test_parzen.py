"""Parzen-window estimates against scipy, sigma chosen on validation data, class means."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats

from gen_models.metrics import parzen


def test_parzen_matches_scipy_on_gaussian_data():
    rng = np.random.default_rng(3)
    centres, x = rng.normal(size=(300, 4)), rng.normal(size=(50, 4))
    sigmas = (0.2, 0.5, 1.0)
    direct = np.array(
        [
            scipy.special.logsumexp(
                scipy.stats.norm.logpdf(x[:, None, :], centres[None], sigma).sum(-1), axis=1
            )
            - np.log(len(centres))
            for sigma in sigmas
        ]
    )
    np.testing.assert_allclose(
        parzen.parzen_log_likelihoods(centres, x, sigmas, chunk=16), direct, rtol=1e-10
    )


def test_parzen_window_picks_sigma_on_validation_and_reports_test_with_stderr():
    rng = np.random.default_rng(4)
    centres, validation, test = (rng.normal(size=(n, 3)) for n in (500, 200, 100))
    sigmas = (0.05, 0.3, 3.0)
    result = parzen.parzen_window(centres, validation, test, sigmas)
    validation_means = parzen.parzen_log_likelihoods(centres, validation, sigmas).mean(1)
    assert result['sigma'] == sigmas[int(np.argmax(validation_means))] == 0.3
    values = parzen.parzen_log_likelihoods(centres, test, [0.3])[0]
    assert result['log_likelihood'] == pytest.approx(values.mean())
    assert result['stderr'] == pytest.approx(values.std() / 10.0)
    assert result['validation_log_likelihood'] == pytest.approx(validation_means.max())


def test_parzen_window_class_means_show_the_class_the_samples_miss():
    rng = np.random.default_rng(5)
    test = np.concatenate([rng.normal(0.0, 1.0, (60, 3)), rng.normal(6.0, 1.0, (40, 3))])
    labels = np.repeat([0, 1], [60, 40])
    centres = rng.normal(0.0, 1.0, (300, 3))  # samples of class 0 only
    validation = rng.normal(0.0, 1.0, (50, 3))
    result = parzen.parzen_window(centres, validation, test, (0.3, 1.0), labels)
    values = parzen.parzen_log_likelihoods(centres, test, [result['sigma']])[0]
    per_class = result['class_log_likelihoods']
    assert per_class == pytest.approx({0: values[:60].mean(), 1: values[60:].mean()})
    assert per_class[1] < per_class[0] - 10
    # The overall mean is the class means weighted by the classes' test counts.
    assert (60 * per_class[0] + 40 * per_class[1]) / 100 == pytest.approx(result['log_likelihood'])
    assert 'class_log_likelihoods' not in parzen.parzen_window(centres, validation, test, (1.0,))
