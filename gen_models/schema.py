"""The schema of a run's config: the shared sections, the chosen family's model section, and
the checks every config passes before any data, compile or long work.

A config is `seed`, `lr` and the sections `dataset`, `transform`, `optim`, `parallel`,
`train`, `eval` and `sweep` (defaults and meanings below and in `gen_models.metrics`), plus
`model`: `model.name` and the keys of that family's `defaults()`. `default_config(name)`
assembles one; `validate` checks one. Keys and meanings are stable: scripts, sweeps and old
workdirs' config.json rely on them (`from_saved` loads the latter).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import ml_collections

from gen_models import config as cfg
from gen_models import metrics, models, optim
from gen_models.data import transforms
from gen_models.nets import precision
from gen_models.parallel import BACKENDS

# Float keys every family's programs take as arrays (see Family.traced for the others).
SHARED_TRACED = ('lr', 'optim.d_lr_multiplier')


def _dataset() -> ml_collections.ConfigDict:
    dataset = ml_collections.ConfigDict()
    dataset.name = 'shapes'  # 'shapes' | 'mnist' | 'fashion_mnist' | 'cifar10' |
    # 'frey_faces' | 'olivetti_faces' | any prepared TFDS dataset
    dataset.data_dir = ''  # prepared TFDS data; '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
    dataset.source_dir = ''  # raw files; '' -> $GEN_MODELS_DATA_DIR or download
    dataset.image_size = 0  # square resize in the pipeline; 0 keeps the size
    dataset.shapes_resolution = 32  # shapes: side of the rendered images
    dataset.train_split = 'train'  # split trained on
    dataset.eval_split = 'test'  # split evaluated on
    dataset.binarize = False  # dynamic binarisation, x ~ Bernoulli(pixel) (families that
    # read it: the VAE)
    dataset.domain_b = ''  # unpaired transformation: dataset whose images (with the splits,
    # size and folders above) are domain B; '' = the transform's targets of other examples
    dataset.verify_checksums = True  # refuse raw files that differ from the canonical sha256
    dataset.reprepare = False  # delete and rebuild the prepared data (repairs a broken file)
    return dataset


def _transform() -> ml_collections.ConfigDict:
    transform = ml_collections.ConfigDict()  # (x, x') pairs, for image-transformation families
    transform.name = 'none'  # x -> x': 'none' | 'rotate' | 'flip' | 'scale' | 'mask'
    # (inpainting: input masked, target whole) | 'noise' (denoising: input noisy, target clean)
    transform.angle = 90.0  # rotate: degrees counter-clockwise; multiples of 90 exact (rot90)
    transform.flip_axis = 'horizontal'  # flip: 'horizontal' (left-right) | 'vertical'
    transform.scale = 1.5  # scale: zoom factor about the centre (> 1 enlarges), bilinear
    transform.mask = 'quarter'  # mask: 'quarter' (top-left quadrant) | 'centre' (centred
    # half-size box) | 'random' (a half-size box at a random position per example) |
    # 'lower_half' (the bottom H // 2 rows)
    transform.noise_std = 0.2  # noise: std of the Gaussian noise added to [0, 1] pixels
    transform.pairing = 'paired'  # 'paired': train on (x, T(x)) | 'unpaired': domain A = x,
    # domain B = T(x) of other, disjoint examples; no pairs given
    return transform


def _optim() -> ml_collections.ConfigDict:
    optimizer = ml_collections.ConfigDict()
    optimizer.name = 'adam'  # 'adam' | 'adamw' | 'adagrad' | 'sgd' | 'rmsprop'
    optimizer.b1 = 0.9  # adam/adamw beta1; sgd momentum (0 = none)
    optimizer.b2 = 0.999  # adam/adamw beta2; rmsprop decay
    optimizer.eps = 1e-8  # numerical epsilon of the optimiser
    optimizer.weight_decay = 0.0  # adamw: decoupled weight decay
    optimizer.d_lr_multiplier = 1.0  # families with a discriminator: its lr is lr * this
    optimizer.schedule = 'constant'  # lr over train steps: 'constant' | 'linear' (to 0 at
    # train.num_steps) | 'cosine' (to 0 at train.num_steps) | 'piecewise' | 'exponential'
    optimizer.schedule_boundaries = ()  # piecewise: train steps where the lr is rescaled
    optimizer.schedule_scales = ()  # piecewise: lr multipliers from each boundary on
    optimizer.decay_start = 0.0  # linear, cosine: the fraction of train.num_steps after which
    # the rate decays (it holds before)
    optimizer.warmup_steps = 0  # linear lr warm-up from 0 over this many train steps
    optimizer.decay_rate = 1.0  # exponential: lr multiplier per train step
    optimizer.momentum_ramp_steps = 0  # sgd: momentum rises linearly from b1 to
    # final_momentum over this many train steps; 0 = constant b1
    optimizer.final_momentum = 0.0  # sgd: momentum at the end of that ramp
    return optimizer


# Step counts that must be multiples of train.steps_per_call (a call runs that many steps).
STEP_INTERVALS = (
    'train.num_steps',
    'train.log_every',
    'train.eval_every',
    'train.checkpoint_every',
    'train.sample_every',
    'eval.every',
)


def _train() -> ml_collections.ConfigDict:
    train = ml_collections.ConfigDict()
    train.num_steps = 2000  # optimisation steps (one batch each)
    train.batch_size = 64  # global batch, split over all devices
    train.log_every = 50  # steps between train-metric logs
    train.eval_every = 500  # steps between evaluations (and at the end)
    train.checkpoint_every = 500  # steps between checkpoints (and at the end)
    train.sample_every = 500  # steps between sample grids (and at the end)
    train.keep_checkpoints = 3  # checkpoints kept on disk (oldest deleted)
    train.eval_batch_size = 128  # global batch of evaluation (a power of two, like
    # batch_size, so that it splits over 1, 2, 4, 8 ... devices)
    train.eval_examples = 0  # examples of the eval split used; 0 = all
    train.num_samples = 64  # images in each sample grid
    train.progress_bar = True  # show a progress bar with rate and ETA
    train.deterministic = True  # GPUs: XLA's deterministic kernels, so that a config and seed
    # give bit-identical numbers (CPU runs always do); launch.py sets XLA_FLAGS before JAX starts
    train.loss_limit = 0.0  # > 0: a logged loss (a train metric named *loss*) of larger
    # magnitude means the run diverged: it stops as on NaN, keeping the last good checkpoint;
    # 0: only NaN/Inf stop it (a VAE's loss can spike past 1e12 early and recover)
    train.steps_per_call = 1  # train steps inside one compiled call (lax.scan over that many
    # batches sent at once; accelerators); the intervals above are multiples of it
    train.device_data_bytes = 0  # a decoded train split up to this size lives on the devices
    # and batches are gathered there (the same batches); 0 = read on the host
    train.compute_dtype = 'float32'  # 'float32' | 'bfloat16': what the nets compute in;
    # parameters, optimiser state, losses and normalisation statistics stay float32
    return train


def _export() -> ml_collections.ConfigDict:
    export = ml_collections.ConfigDict()  # launch.py --mode export: images for other tools
    export.num_images = 10000  # generated images written (and, for encoders, reconstructed
    # or transformed eval images)
    export.format = 'npz'  # 'npz' (uint8 NHWC under 'images', 'labels' if conditional) |
    # 'png' (000000.png, ... folders that pytorch-fid, torch-fidelity, clean-fid read)
    export.checkpoint = 'latest'  # 'latest' | 'best' (eval.keep_best's)
    export.label = -1  # conditional models: the class of every image; -1 = balanced classes
    export.dir = ''  # where to write; '' = <workdir>/export/<step>
    return export


def _sweep() -> ml_collections.ConfigDict:
    sweep = ml_collections.ConfigDict()  # launch.py --mode sweep (the file's get_sweep())
    sweep.metric = 'eval/elbo'  # results.json metric that ranks trials and is plotted
    sweep.mode = 'max'  # 'max' | 'min': which end of sweep.metric is best
    slurm = sweep.slurm = ml_collections.ConfigDict()  # --executor slurm: each array task's
    # resources (one task per trial, or per vectorised group with --vectorize K)
    slurm.partition = ''  # partition to submit to; '' = the cluster's default
    slurm.time = 60  # minutes a task may run (at signal_delay_s before, it requeues itself)
    slurm.gpus_per_task = 0  # GPUs of each task (process)
    slurm.cpus_per_task = 1  # CPU cores of each task
    slurm.mem = ''  # memory per node, e.g. '4G' or '500M'; '' = the partition's default
    slurm.array_parallelism = 64  # array tasks running at once, at most
    slurm.nodes = 1  # nodes per trial; > 1 (or tasks_per_node > 1) joins them through
    # jax.distributed as one multi-process run
    slurm.tasks_per_node = 1  # processes per node (e.g. one per GPU)
    slurm.additional_parameters = ()  # more sbatch options, e.g. ('account=x', 'exclusive')
    slurm.signal_delay_s = 120  # seconds before the time limit at which SLURM signals the
    # task (SIGUSR2) to checkpoint and requeue itself
    return sweep


def shared_defaults() -> ml_collections.ConfigDict:
    """Every key but those of `config.model`, with its default."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of every PRNG key and of the data order
    config.lr = 1e-3  # learning rate of every optimiser (see optim.*)
    config.dataset = _dataset()
    config.transform = _transform()
    config.optim = _optim()
    config.parallel = ml_collections.ConfigDict()
    config.parallel.backend = 'shard_map'  # steps over all devices: 'shard_map' (jit +
    # shard_map; spans hosts) | 'pmap'; both give the same numbers
    config.train = _train()
    config.eval = metrics.eval_defaults()
    config.export = _export()
    config.sweep = _sweep()
    return config


def default_config(family: str) -> ml_collections.ConfigDict:
    """The shared defaults with the model section of `family`."""
    config = shared_defaults()
    config.model = ml_collections.ConfigDict({'name': family})
    config.model.update(models.family(family).defaults())
    return config


SHARED_RULES: dict[str, cfg.Rule] = {
    'seed': cfg.at_least(0),
    'lr': cfg.positive(),
    'dataset.image_size': ((lambda v: v == 0 or v >= 8), '0 (keep) or >= 8'),
    'dataset.shapes_resolution': cfg.at_least(8),
    'dataset.domain_b': (
        (lambda v: re.fullmatch(r'([\w.-]+(/[\w.-]+)*)?', v) is not None),
        "'' (domain B: the transform's targets of the dataset's own examples) or a dataset name",
    ),
    'transform.name': cfg.choice(*transforms.TRANSFORMS),
    'transform.angle': cfg.finite(),
    'transform.flip_axis': cfg.choice(*transforms.FLIP_AXES),
    'transform.scale': cfg.positive(),
    'transform.mask': cfg.choice(*transforms.MASKS),
    'transform.noise_std': cfg.at_least(0),
    'transform.pairing': cfg.choice(*transforms.PAIRINGS),
    'optim.name': cfg.choice(*optim.OPTIMIZERS),
    'optim.b1': cfg.unit_interval(),
    'optim.b2': cfg.unit_interval(),
    'optim.eps': cfg.positive(),
    'optim.weight_decay': cfg.at_least(0),
    'optim.d_lr_multiplier': cfg.positive(),
    'optim.schedule': cfg.choice(*optim.SCHEDULES),
    'optim.schedule_boundaries': (
        (lambda v: all(isinstance(b, int) and b >= 1 for b in v) and list(v) == sorted(set(v))),
        'increasing positive step numbers',
    ),
    'optim.schedule_scales': (
        (lambda v: all(isinstance(s, int | float) and 0 <= s < math.inf for s in v)),
        'a tuple of finite non-negative multipliers',
    ),
    'optim.warmup_steps': cfg.at_least(0),
    'optim.decay_start': ((lambda v: 0 <= v < 1), 'in [0, 1)'),
    'optim.decay_rate': ((lambda v: 0 < v <= 1), 'in (0, 1]'),
    'optim.momentum_ramp_steps': cfg.at_least(0),
    'optim.final_momentum': cfg.unit_interval(),
    'parallel.backend': cfg.choice(*BACKENDS),
    'train.num_steps': cfg.at_least(1),
    'train.batch_size': cfg.at_least(1),
    'train.log_every': cfg.at_least(1),
    'train.eval_every': cfg.at_least(1),
    'train.checkpoint_every': cfg.at_least(1),
    'train.sample_every': cfg.at_least(1),
    'train.keep_checkpoints': cfg.at_least(1),
    'train.eval_batch_size': cfg.at_least(1),
    'train.eval_examples': cfg.at_least(0),
    'train.num_samples': cfg.at_least(1),
    'train.loss_limit': cfg.at_least(0),
    'train.steps_per_call': cfg.at_least(1),
    'train.device_data_bytes': cfg.at_least(0),
    'train.compute_dtype': cfg.choice(*precision.COMPUTE_DTYPES),
    **metrics.EVAL_RULES,
    'export.num_images': cfg.at_least(1),
    'export.format': cfg.choice('npz', 'png'),
    'export.checkpoint': cfg.choice('latest', 'best'),
    'export.label': cfg.at_least(-1),
    'sweep.metric': ((lambda v: '/' in v), "a results.json metric such as 'eval/elbo'"),
    'sweep.mode': cfg.choice('max', 'min'),
    'sweep.slurm.partition': (
        (lambda v: re.fullmatch(r'[\w.,-]*', v) is not None),
        "'' (the cluster's default) or partition names",
    ),
    'sweep.slurm.time': cfg.at_least(1),
    'sweep.slurm.gpus_per_task': cfg.at_least(0),
    'sweep.slurm.cpus_per_task': cfg.at_least(1),
    'sweep.slurm.mem': (
        (lambda v: re.fullmatch(r'(\d+[KMGT]?)?', v) is not None),
        "'' (the partition's default) or a size such as '4G' or '500M'",
    ),
    'sweep.slurm.array_parallelism': cfg.at_least(1),
    'sweep.slurm.nodes': cfg.at_least(1),
    'sweep.slurm.tasks_per_node': cfg.at_least(1),
    'sweep.slurm.additional_parameters': (
        (
            lambda v: all(
                isinstance(o, str)
                and re.fullmatch(r'(?!(array|output|error|open-mode)(=|$))[a-z][\w-]*(=.+)?', o)
                for o in v
            )
        ),
        "sbatch options as 'name=value' or 'flag' strings, but array, output, error and "
        'open-mode (the executor sets those)',
    ),
    'sweep.slurm.signal_delay_s': cfg.at_least(0),
}
# Shared keys only some families read (Family.reads): the others refuse non-default values.
OPT_IN = ('dataset.binarize', 'dataset.domain_b', 'transform.*', 'optim.d_lr_multiplier')


def _family(config: ml_collections.ConfigDict) -> models.Family:
    name = config.get('model', {}).get('name')
    if name not in models.families():
        raise cfg.ConfigError('model.name', name, cfg.choice(*models.families())[1])
    return models.family(name)


def _check_keys(config: ml_collections.ConfigDict, family: models.Family) -> None:
    """Unknown keys, missing keys and values of the wrong type."""
    schema = dict(cfg.flatten(default_config(family.name)))
    values = dict(cfg.flatten(config))
    for key, value in values.items():
        if key not in schema:
            where = (
                f'not a key of model family {family.name!r} (docs/families.md lists its keys)'
                if key.startswith('model.')
                else 'unknown key (docs/configs.md lists every key)'
            )
            raise cfg.ConfigError(key, value, where)
    for key, reference in schema.items():
        if key not in values:
            raise cfg.ConfigError(
                key, None, 'a required key is missing; start configs from configs/default.py'
            )
        cfg.check_type(key, values[key], reference)


def _reads(family: models.Family, key: str) -> bool:
    return key in family.reads or f'{key.partition(".")[0]}.*' in family.reads


def _check_opt_in(config: ml_collections.ConfigDict, family: models.Family) -> None:
    defaults = dict(cfg.flatten(shared_defaults()))
    for pattern in OPT_IN:
        prefix = pattern.removesuffix('*')
        for key, default in defaults.items():
            if (key == pattern or key.startswith(prefix) and pattern.endswith('*')) and not _reads(
                family, key
            ):
                value = cfg.get_key(config, key)
                if value != default:
                    raise cfg.ConfigError(
                        key,
                        value,
                        f'{default!r}: model family {family.name!r} does not read it',
                    )


def _check_toggles(config: ml_collections.ConfigDict, family: models.Family) -> None:
    for toggle, weight in family.toggles.items():
        if cfg.get_key(config, toggle) is False and cfg.get_key(config, weight) != 0:
            raise cfg.ConfigError(
                weight, cfg.get_key(config, weight), f'0 when config.{toggle}=False'
            )


def _check_shared(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Combinations of shared keys."""
    optimizer, train = config.optim, config.train
    if optimizer.momentum_ramp_steps and optimizer.name != 'sgd':
        raise cfg.ConfigError(
            'optim.momentum_ramp_steps', optimizer.momentum_ramp_steps, "0 unless optim.name='sgd'"
        )
    if len(optimizer.schedule_scales) != len(optimizer.schedule_boundaries):
        raise cfg.ConfigError(
            'optim.schedule_scales',
            optimizer.schedule_scales,
            'one multiplier per optim.schedule_boundaries entry',
        )
    for key in STEP_INTERVALS:
        value = cfg.get_key(config, key)
        if value % train.steps_per_call:
            raise cfg.ConfigError(
                key, value, f'a multiple of train.steps_per_call ({train.steps_per_call})'
            )
    for key in ('batch_size', 'eval_batch_size'):
        if train[key] % num_devices:
            raise cfg.ConfigError(
                f'train.{key}', train[key], f'a multiple of the device count ({num_devices})'
            )


def validate(config: ml_collections.ConfigDict, num_devices: int = 1, info: Any = None) -> None:
    """Raises ConfigError for the first problem found in `config`: keys, types, values,
    combinations; with `info` (the dataset's DatasetInfo), what the family needs of data."""
    family = _family(config)
    _check_keys(config, family)
    cfg.check_rules(config, {**SHARED_RULES, **family.rules})
    _check_opt_in(config, family)
    _check_toggles(config, family)
    _check_shared(config, num_devices)
    metrics.validate(config)
    family.validate(config, info, num_devices)


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy with every toggle left at None set to what it means (weight != 0), so that
    the config states the program's structure."""
    config = copy.deepcopy(config)
    for toggle, weight in _family(config).toggles.items():
        if cfg.get_key(config, toggle) is None:
            parent, _, leaf = toggle.rpartition('.')
            cfg.get_key(config, parent)[leaf] = bool(cfg.get_key(config, weight) != 0)
    return config


def traced_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The float keys of `config` that its compiled programs take as arrays."""
    return (*SHARED_TRACED, *_family(config).traced)


def from_saved(saved: dict[str, Any]) -> ml_collections.ConfigDict:
    """A run's saved config.json on today's schema: keys added since then take their
    defaults, and model keys its family does not read (configs of older versions held every
    family's keys) are dropped, so older runs stay loadable."""
    config = default_config(_family(ml_collections.ConfigDict(saved)).name)
    schema = dict(cfg.flatten(config))
    config.update_from_flattened_dict(
        {
            key: tuple(value) if isinstance(schema[key], tuple) else value
            for key, value in cfg.flatten(saved)
            if key in schema
        }
    )
    return config
