"""The config schema: every validation error path (unknown key, wrong type, out of range,
inconsistent), shared keys only some families read, toggles, and old config.json files."""

import json

import pytest

from configs import dcgan_mnist, default, hybrid_shapes
from gen_models import config as cfg
from gen_models import data, models, schema
from gen_models.config import ConfigError


def _with(key: str, value, family: str = 'vae'):
    config = default.base(family)
    parent, _, leaf = key.rpartition('.')
    node = cfg.get_key(config, parent) if parent else config
    with node.ignore_type():
        node[leaf] = value
    return config


@pytest.mark.parametrize(
    'key,value,family,allowed',
    [
        ('model.name', 'gann', 'vae', "'gan' | 'hybrid'"),
        ('model.gan_loss', 'wgan', 'gan', "'minimax' | 'non_saturating'"),
        ('model.likelihood', 'poisson', 'vae', "'bernoulli' | 'gaussian'"),
        ('model.likelihood', 'logistic', 'hybrid', "one of 'bernoulli' | 'gaussian'"),
        ('optim.name', 'lbfgs', 'vae', "'adam'"),
        ('lr', 0.0, 'vae', '> 0'),
        ('lr', -1e-3, 'vae', '> 0'),
        ('lr', float('inf'), 'vae', 'finite'),
        ('model.beta', float('inf'), 'vae', 'finite'),
        ('optim.eps', float('inf'), 'vae', 'finite'),
        ('train.num_steps', 0, 'vae', '>= 1'),
        ('train.batch_size', -4, 'vae', '>= 1'),
        ('model.d_dropout', 1.0, 'gan', 'in [0, 1)'),
        ('model.hidden', (), 'vae', 'non-empty tuple'),
        ('dataset.image_size', 4, 'vae', '0 (keep) or >= 8'),
        ('train.num_steps', 2.5, 'vae', 'type int'),
        ('lr', 'fast', 'vae', 'type float'),
        ('train.progress_bar', 1, 'vae', 'type bool'),
        ('model.net', 'resnet', 'vae', "one of 'conv' | 'mlp'"),
        ('train.compute_dtype', 'float16', 'gan', "one of 'float32' | 'bfloat16'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, family, allowed):
    with pytest.raises(ConfigError) as error:
        schema.validate(_with(key, value, family))
    message = str(error.value)
    assert message.startswith(f'config.{key}={value!r}')
    assert allowed in message


def test_every_family_default_is_valid():
    for name in models.families():
        schema.validate(default.base(name))


def test_int_accepted_for_float():
    schema.validate(_with('lr', 1))


def test_unknown_and_missing_keys():
    config = default.get_config()
    config.train.num_stepz = 10
    with pytest.raises(ConfigError, match='train.num_stepz.*unknown key'):
        schema.validate(config)
    config = default.get_config()
    del config.model['beta']
    with pytest.raises(ConfigError, match='model.beta.*missing'):
        schema.validate(config)


def test_a_key_of_another_family_is_refused():
    """A GAN config has no VAE keys: changing model.name alone leaves them in the section."""
    config = default.get_config()
    config.model.name = 'gan'
    with pytest.raises(ConfigError, match="not a key of model family 'gan'"):
        schema.validate(config)


@pytest.mark.parametrize(
    'family,key,value',
    [
        ('gan', 'dataset.binarize', True),
        ('vae', 'transform.name', 'rotate'),
        ('gan', 'transform.noise_std', 0.5),
        ('vae', 'optim.d_lr_multiplier', 2.0),
    ],
)
def test_shared_keys_a_family_does_not_read_are_refused(family, key, value):
    with pytest.raises(ConfigError, match='does not read it') as error:
        schema.validate(_with(key, value, family))
    assert str(error.value).startswith(f'config.{key}={value!r}')


def test_shared_keys_a_family_reads_are_accepted():
    schema.validate(_with('optim.d_lr_multiplier', 2.0, 'gan'))
    schema.validate(hybrid_shapes.get_config('denoise'))
    config = _with('dataset.binarize', True)
    schema.validate(config)


def test_inconsistent_combinations():
    config = dcgan_mnist.get_config()
    config.model.net = 'mlp'
    config.model.spectral_norm = True
    with pytest.raises(ConfigError, match="spectral_norm=True .*False with model.net='mlp'"):
        schema.validate(config)
    config = _with('model.likelihood', 'gaussian')
    config.dataset.binarize = True
    with pytest.raises(ConfigError, match='dataset.binarize'):
        schema.validate(config)
    config = default.get_config()
    config.train.batch_size = 30
    with pytest.raises(ConfigError, match='train.batch_size=30.*multiple of the device count'):
        schema.validate(config, num_devices=8)
    config = dcgan_mnist.get_config()
    config.train.batch_size = 60
    config.model.n_critic = 8
    with pytest.raises(ConfigError, match='train.batch_size=60.*n_critic'):
        schema.validate(config)


def test_data_dependent_checks():
    config = default.get_config()
    config.dataset.image_size = 9
    info = data.DatasetInfo((9, 9, 1), 0, num_train=10, num_eval=10)
    with pytest.raises(ConfigError, match='dataset.image_size=9'):
        schema.validate(config, info=info)
    config = default.get_config()
    config.model.conditional = True
    schema.validate(config, info=data.DatasetInfo((28, 28, 1), 10, 10, 10))
    with pytest.raises(ConfigError, match='model.conditional'):
        schema.validate(config, info=data.DatasetInfo((28, 28, 1), 0, 10, 10))
    with pytest.raises(ConfigError, match='at least 11 px'):
        schema.validate(hybrid_shapes.get_config(), info=data.DatasetInfo((8, 8, 1), 0, 10, 10))


def test_toggle_off_with_a_weight_is_refused_and_none_resolves_from_the_weight():
    config = dcgan_mnist.get_config('wgan_gp')
    assert config.model.use_gradient_penalty is None
    resolved = schema.resolve(config)
    assert resolved.model.use_gradient_penalty is True and resolved.model.use_r1 is False
    assert config.model.use_gradient_penalty is None  # resolve returns a copy
    config.model.use_gradient_penalty = False
    with pytest.raises(ConfigError, match='gradient_penalty=10.0 .*0 when config.model.use_gra'):
        schema.validate(config)
    config.model.update(use_gradient_penalty=True, gradient_penalty=0.0)
    schema.validate(config)  # on with weight 0: the structure of a sweep over 0, 1, 10


def test_traced_keys_are_the_shared_ones_and_the_familys():
    assert schema.traced_keys(dcgan_mnist.get_config()) == (
        'lr',
        'optim.d_lr_multiplier',
        'model.gradient_penalty',
        'model.r1_gamma',
        'model.ema_decay',
    )
    assert schema.traced_keys(default.get_config())[2:] == ('model.beta',)


def test_old_config_json_holding_every_family_keys_loads(tmp_path):
    """Configs of older versions held every family's model keys: a GAN's keeps its own."""
    saved = default.base('gan').to_dict()
    saved['model'].update(likelihood='bernoulli', beta=4.0, code_dim=128, n_critic=4)
    del saved['model']['use_ema']  # keys added since then take their defaults
    loaded = schema.from_saved(json.loads(json.dumps(saved)))
    assert loaded.model.n_critic == 4 and loaded.model.use_ema is None
    assert 'beta' not in loaded.model and 'likelihood' not in loaded.model
    schema.validate(loaded)


def test_unknown_config_variant():
    with pytest.raises(ValueError, match="variant 'huge' is unknown"):
        dcgan_mnist.get_config('huge')
