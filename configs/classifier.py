"""Small conv classifiers: the feature networks of fast dataset FID/KID and classifier scores.

`--config configs/classifier.py:mnist` (or `:fashion_mnist`, `:cifar10`); evaluation of a
generative model then points `eval.classifier_workdir` at the trained run's workdir.
"""

from configs import default

# dataset -> (conv width of the first stage, epochs)
SETTINGS = {'mnist': (16, 2), 'fashion_mnist': (16, 5), 'cifar10': (32, 10)}
TRAIN_SIZE = 60_000
BATCH_SIZE = 128


def get_config(arg: str | None = None):
    default.check_variant(arg, tuple(SETTINGS))
    dataset = arg or 'mnist'
    width, epochs = SETTINGS[dataset]
    config = default.base('classifier')
    config.lr = 1e-3
    config.model.width = width
    config.model.hidden = (128,)  # feature size
    config.dataset.name = dataset
    train_size = 50_000 if dataset == 'cifar10' else TRAIN_SIZE
    steps_per_epoch = train_size // BATCH_SIZE
    config.train.batch_size = BATCH_SIZE
    config.train.num_steps = epochs * steps_per_epoch
    config.train.eval_every = steps_per_epoch
    config.train.checkpoint_every = steps_per_epoch
    config.train.sample_every = config.train.num_steps
    config.train.eval_batch_size = 500
    return config
