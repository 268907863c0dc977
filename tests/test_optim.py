"""Learning-rate schedules against their closed forms; a resumed optimiser continues them."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from gen_models import optim

NUM_STEPS = 20


def _optim_config(**overrides):
    config = default.get_config().optim
    config.update(overrides)
    return config


def _closed_form(name: str, step: int, warmup: int = 0) -> float:
    progress = min(step, NUM_STEPS) / NUM_STEPS
    factor = {
        'constant': 1.0,
        'linear': 1.0 - progress,
        'cosine': 0.5 * (1.0 + math.cos(math.pi * progress)),
        # boundaries (5, 12), scales (0.5, 0.1)
        'piecewise': 1.0 if step < 5 else 0.5 if step < 12 else 0.05,
        'exponential': 0.9**step,  # decay_rate 0.9
    }[name]
    return factor * (min(step / warmup, 1.0) if warmup else 1.0)


def _config_for(name: str, warmup: int = 0):
    extra = {
        'piecewise': {'schedule_boundaries': (5, 12), 'schedule_scales': (0.5, 0.1)},
        'exponential': {'decay_rate': 0.9},
    }
    return _optim_config(schedule=name, warmup_steps=warmup, **extra.get(name, {}))


@pytest.mark.parametrize('name', optim.SCHEDULES)
@pytest.mark.parametrize('warmup', [0, 4])
def test_multiplier_matches_closed_form(name, warmup):
    multiplier = jax.jit(optim.lr_multiplier(_config_for(name, warmup), NUM_STEPS))
    for step in range(NUM_STEPS + 3):
        assert float(multiplier(jnp.int32(step))) == pytest.approx(
            _closed_form(name, step, warmup), abs=1e-6
        ), step


@pytest.mark.parametrize('name', ['linear', 'cosine'])
def test_decay_start_holds_the_rate_then_decays_over_the_rest(name):
    start = 8
    config = _optim_config(schedule=name, decay_start=start / NUM_STEPS)
    multiplier = jax.jit(optim.lr_multiplier(config, NUM_STEPS))
    for step in range(NUM_STEPS + 3):
        progress = min(max(step - start, 0), NUM_STEPS - start) / (NUM_STEPS - start)
        want = 1.0 - progress if name == 'linear' else 0.5 * (1.0 + math.cos(math.pi * progress))
        assert float(multiplier(jnp.int32(step))) == pytest.approx(want, abs=1e-6), step


def test_updates_per_step_holds_the_rate_over_a_step():
    multiplier = optim.lr_multiplier(_config_for('linear'), NUM_STEPS, updates_per_step=5)
    values = [float(multiplier(jnp.int32(count))) for count in range(15)]
    assert values == pytest.approx([_closed_form('linear', c // 5) for c in range(15)])


def test_optimizer_applies_the_schedule_and_resume_continues_it():
    config = _config_for('cosine', warmup=3)
    config.name = 'sgd'
    config.b1 = 0.0
    lr = 0.1
    tx = optim.make_optimizer(config, lr, NUM_STEPS)
    params = {'w': jnp.zeros(3)}
    state = tx.init(params)
    straight = []
    for _ in range(12):
        updates, state = tx.update({'w': jnp.ones(3)}, state, params)
        straight.append(-float(updates['w'][0]))  # SGD: update = -lr_t * grad
    expected = [lr * _closed_form('cosine', t, 3) for t in range(12)]
    np.testing.assert_allclose(straight, expected, rtol=1e-6, atol=1e-9)

    # Resume: a state restored from host numbers after 7 updates continues at update 7.
    state = tx.init(params)
    for _ in range(7):
        _, state = tx.update({'w': jnp.ones(3)}, state, params)
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state)
    resumed = []
    for _ in range(5):
        updates, restored = tx.update({'w': jnp.ones(3)}, restored, params)
        resumed.append(-float(updates['w'][0]))
    np.testing.assert_allclose(resumed, straight[7:], rtol=1e-6, atol=1e-9)


def test_constant_rate_keeps_the_optimiser_state_layout():
    """No schedule state is added for a constant rate: checkpoints from before schedules fit."""
    params = {'w': jnp.zeros(3)}
    constant = optim.make_optimizer(_optim_config(), 0.1, NUM_STEPS).init(params)
    assert constant.hyperparams_states == {}
    scheduled = optim.make_optimizer(_config_for('linear'), 0.1, NUM_STEPS).init(params)
    assert scheduled.hyperparams_states


def test_traced_learning_rate_is_scheduled():
    """Compiled programs pass the lr as an array: the schedule multiplies it arithmetically."""
    config = _config_for('linear')
    config.name = 'sgd'
    config.b1 = 0.0

    @jax.jit
    def three_updates(lr):
        tx = optim.make_optimizer(config, lr, NUM_STEPS)
        params = {'w': jnp.zeros(1)}
        state, steps = tx.init(params), []
        for _ in range(3):
            updates, state = tx.update({'w': jnp.ones(1)}, state, params)
            steps.append(-updates['w'][0])
        return jnp.stack(steps)

    np.testing.assert_allclose(
        three_updates(jnp.float32(0.2)),
        [0.2 * _closed_form('linear', t) for t in range(3)],
        rtol=1e-6,
    )


@pytest.mark.parametrize('updates_per_step', [1, 2])
def test_sgd_momentum_ramp_matches_heavy_ball_with_a_linear_momentum(updates_per_step):
    """Momentum b1 -> final_momentum linearly over momentum_ramp_steps train steps, in the
    heavy-ball recurrence t = g + m t_prev, update = -lr t (checked against numpy)."""
    config = _optim_config(name='sgd', b1=0.5, final_momentum=0.7, momentum_ramp_steps=4)
    lr, grads = 0.1, np.linspace(1.0, 2.0, 12)
    tx = optim.make_optimizer(config, lr, NUM_STEPS, updates_per_step)
    params = {'w': jnp.zeros(1)}
    state, trace = tx.init(params), 0.0
    for count, grad in enumerate(grads):
        momentum = 0.5 + 0.2 * min(count // updates_per_step / 4, 1.0)
        trace = grad + momentum * trace
        updates, state = tx.update({'w': jnp.full(1, grad)}, state, params)
        assert float(updates['w'][0]) == pytest.approx(-lr * trace, rel=1e-6), count
