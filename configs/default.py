"""Every config key with its default; experiment configs start from `get_config()`.

Keys and meanings are stable: scripts and sweeps may rely on them. Values are checked by
`experiments/config_validation.py` before any data or compile work starts.
"""

import ml_collections


class UnknownVariantError(ValueError):
    """A `--config file.py:arg` variant the file does not define; `allowed` lists those it does."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ()):
        # One-argument construction too: config_flags re-raises errors with a longer message.
        super().__init__(message)
        self.allowed = allowed


def check_variant(arg: str | None, allowed: tuple[str, ...]) -> None:
    """Rejects a `--config file.py:arg` variant the config file does not define."""
    if arg is not None and arg not in allowed:
        raise UnknownVariantError(
            f'config variant {arg!r} is unknown; allowed: {allowed or "none"}', tuple(allowed)
        )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The default config: a small conv VAE on the embedded shapes dataset."""
    check_variant(arg, ())
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of every PRNG key and of the data order
    config.lr = 1e-3  # learning rate of every optimiser (see optim.*)

    config.model = model = ml_collections.ConfigDict()
    model.name = 'vae'  # model family: 'gan' | 'vae' | 'vaegan' | 'classifier' (feature net)
    # | 'hybrid' (encoder, decoder and an image-to-image generator G: x -> x', config.transform)
    model.net = 'conv'  # 'conv' (DCGAN-style stacks) | 'mlp' (VAE; unconditional GAN: ReLU
    # G, maxout D) | 'resnet' (GAN only: SNGAN-style residual G and D)
    model.latent_dim = 16  # size of z
    model.width = 32  # conv: channels of the widest-resolution stage; resnet: G's blocks have 4x
    # and D's 2x this many channels (StudioGAN's convention)
    model.kernel_size = 4  # conv: kernel side of every conv layer
    model.conditional = False  # gan/vae: condition on the dataset's class labels (generate a
    # requested class); needs a labelled dataset
    model.hidden = (500,)  # mlp: hidden layer sizes (encoder; decoder reversed; GAN: G's)
    model.d_hidden = (240, 240)  # gan, mlp: maxout units of each D hidden layer
    model.maxout_pieces = 5  # gan, mlp: linear pieces each maxout unit takes the max of
    model.activation = 'relu'  # mlp: 'tanh' | 'relu' | 'softplus' | 'leaky_relu'
    model.gan_loss = 'non_saturating'  # gan: 'minimax' | 'non_saturating' (cross-entropy D,
    # G's loss) | 'hinge' | 'wasserstein' (a critic; pair it with a gradient penalty)
    model.d_dropout = 0.3  # gan, conv: dropout rate after each D conv layer; mlp: at the
    # input of each D layer after the first
    model.d_input_dropout = 0.0  # gan, mlp: dropout rate of D's input pixels
    model.g_init_range = 0.0  # gan, mlp: G's weights start uniform in +-this; 0 = LeCun normal
    model.d_init_range = 0.0  # gan, mlp: D's weights start uniform in +-this; 0 = LeCun normal
    model.gradient_penalty = 0.0  # gan: weight of WGAN-GP's (||grad D||-1)^2 on interpolates
    model.r1_gamma = 0.0  # gan: R1 penalty gamma/2 * ||grad D(x)||^2 on real images
    model.n_critic = 1  # gan: D updates per G update, each on its own 1/n of the train batch
    model.simultaneous_update = False  # gan: G's step uses D as it was before D's step on
    # the same batch (Goodfellow et al.'s code); False = D steps first, G against the new D
    model.spectral_norm = False  # gan: spectral normalisation of every D layer
    model.ema_decay = 0.0  # gan: decay of an EMA of G's weights used to generate; 0 = off
    model.likelihood = 'bernoulli'  # vae: p(x|z), 'bernoulli' | 'gaussian' | 'logistic'
    # (discretised logistic of 8-bit pixels, per-channel scale; eval also in bits/dim)
    model.beta = 1.0  # vae, vaegan: weight of the KL term in the loss
    model.kl_warmup_steps = 0  # vae: KL weight rises linearly from 0 to beta over these
    # steps; 0 = off
    model.num_importance_samples = 1  # vae: k of the IWAE training bound (Burda et al.);
    # 1 = the ELBO
    model.decoder_std = 0.1  # vae, gaussian: (initial) std of p(x|z); logistic: its scale
    model.learn_decoder_std = False  # vae, gaussian/logistic: learn that std/scale
    model.decoder_std_per_pixel = False  # vae, gaussian/logistic: the decoder outputs a log
    # std/scale per pixel (relative to decoder_std) instead of one parameter
    model.vaegan_gamma = 1.0  # vaegan: weight of the feature-space likelihood in the
    # decoder's loss, against the GAN term (Larsen et al. 2016)
    model.code_dim = 128  # hybrid: width of G's dense bottleneck (image -> code -> image);
    # unpaired: of the layers the two domains' encoders and decoders share
    model.adversarial_weight = 0.0  # hybrid: weight of a DCGAN discriminator's loss on G's
    # outputs (unpaired: on both translations); 0 = no discriminator
    model.cycle_weight = 1.0  # hybrid, unpaired: weight of the cycle terms A->B->A, B->A->B

    config.dataset = dataset = ml_collections.ConfigDict()
    dataset.name = 'shapes'  # 'shapes' | 'mnist' | 'fashion_mnist' | 'cifar10' |
    # 'frey_faces' | any prepared TFDS dataset
    dataset.data_dir = ''  # prepared TFDS data; '' -> $TFDS_DATA_DIR or
    # ~/tensorflow_datasets
    dataset.source_dir = ''  # raw files; '' -> $GEN_MODELS_DATA_DIR or download
    dataset.image_size = 0  # square resize in the pipeline; 0 keeps the size
    dataset.shapes_resolution = 32  # shapes: side of the rendered images
    dataset.train_split = 'train'  # split trained on
    dataset.eval_split = 'test'  # split evaluated on
    dataset.binarize = False  # vae: dynamic binarisation, x ~ Bernoulli(pixel)

    config.transform = transform = ml_collections.ConfigDict()  # hybrid: (x, x') pairs
    transform.name = 'none'  # x -> x': 'none' | 'rotate' | 'flip' | 'scale' | 'mask'
    # (inpainting: input masked, target whole) | 'noise' (denoising: input noisy, target clean)
    transform.angle = 90.0  # rotate: degrees counter-clockwise; multiples of 90 exact (rot90)
    transform.flip_axis = 'horizontal'  # flip: 'horizontal' (left-right) | 'vertical'
    transform.scale = 1.5  # scale: zoom factor about the centre (> 1 enlarges), bilinear
    transform.mask = 'quarter'  # mask: 'quarter' (top-left quadrant) | 'centre' (centred
    # half-size box) | 'random' (a half-size box at a random position per example)
    transform.noise_std = 0.2  # noise: std of the Gaussian noise added to [0, 1] pixels
    transform.pairing = 'paired'  # 'paired': train on (x, T(x)) | 'unpaired': domain A = x, domain
    # B = T(x) of other, disjoint examples; no pairs given (UNIT-like translation)

    config.optim = optim = ml_collections.ConfigDict()
    optim.name = 'adam'  # 'adam' | 'adamw' | 'adagrad' | 'sgd' | 'rmsprop'
    optim.b1 = 0.9  # adam/adamw beta1; sgd momentum (0 = none)
    optim.b2 = 0.999  # adam/adamw beta2; rmsprop decay
    optim.eps = 1e-8  # numerical epsilon of the optimiser
    optim.weight_decay = 0.0  # adamw: decoupled weight decay
    optim.d_lr_multiplier = 1.0  # gan: D's learning rate is lr * this
    optim.schedule = 'constant'  # lr over train steps: 'constant' | 'linear' (to 0 at
    # train.num_steps) | 'cosine' (to 0 at train.num_steps) | 'piecewise' | 'exponential'
    optim.schedule_boundaries = ()  # piecewise: train steps where the lr is rescaled
    optim.schedule_scales = ()  # piecewise: lr multipliers from each boundary on (cumulative)
    optim.warmup_steps = 0  # linear lr warm-up from 0 over this many train steps
    optim.decay_rate = 1.0  # exponential: lr multiplier per train step
    optim.momentum_ramp_steps = 0  # sgd: momentum rises linearly from b1 to final_momentum
    # over this many train steps; 0 = constant b1
    optim.final_momentum = 0.0  # sgd: momentum at the end of that ramp

    config.parallel = parallel = ml_collections.ConfigDict()
    parallel.backend = 'shard_map'  # steps over all devices: 'shard_map' (jit + shard_map;
    # spans hosts) | 'pmap'; both give the same numbers

    config.train = train = ml_collections.ConfigDict()
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

    config.eval = evaluation = ml_collections.ConfigDict()
    evaluation.metrics = ()  # metrics beyond the eval step's: 'iwae' | 'fid' | 'kid' |
    # 'parzen' | 'parzen_reference' | 'classifier_score' | 'class_accuracy' | 'precision_recall'
    evaluation.every = 0  # steps between eval.metrics while training; 0 = only --mode eval
    evaluation.keep_best = ''  # a value of eval.metrics (e.g. 'parzen_validation', 'fid'):
    # keep the checkpoint where it was best in training, in <workdir>/best_checkpoint; '' = off
    evaluation.keep_best_mode = 'max'  # 'max' | 'min': which end of eval.keep_best is best
    evaluation.checkpoint = 'latest'  # --mode eval: 'latest' | 'best' (eval.keep_best's)
    evaluation.num_samples = 10000  # fid/kid/parzen: generated images measured
    evaluation.reference_split = 'train'  # fid/kid: real images compared against
    evaluation.reference_examples = 0  # fid/kid: first N of that split; 0 = all
    evaluation.inception_path = ''  # '' -> $GEN_MODELS_INCEPTION, else
    # ../shared/models/fid_inception/fid_inception_v3_2015_12_05.npz beside the repository
    evaluation.stats_dir = ''  # reference-feature cache; '' -> $GEN_MODELS_STATS_DIR or
    # ~/.cache/gen_models/reference_features
    evaluation.feature_net = 'inception'  # fid/kid/precision_recall: 'inception' | 'classifier'
    evaluation.classifier_workdir = ''  # workdir of a trained configs/classifier.py run:
    # the 'classifier' feature net, the classifier score and class accuracy
    evaluation.feature_batch_size = 32  # fid/kid: images per feature-network call
    evaluation.kid_subsets = 100  # kid: random subset pairs averaged
    evaluation.kid_subset_size = 1000  # kid: images per subset
    evaluation.pr_neighbours = 3  # precision_recall: k of the k-NN balls
    evaluation.iwae_samples = 5000  # iwae: importance samples k per image (Burda et al.)
    evaluation.iwae_chunk = 100  # iwae: samples decoded per image at once (memory)
    evaluation.parzen_validation_split = 'train[-10000:]'  # parzen: split choosing sigma
    evaluation.parzen_sigmas = tuple(10 ** (i / 9 - 1) for i in range(10))  # 0.1 .. 1
    evaluation.parzen_reference_split = 'train'  # parzen_reference: its first num_samples
    # real images take the place of generated samples (the estimate's value for real data)

    config.sweep = sweep = ml_collections.ConfigDict()  # launch.py --mode sweep (get_sweep())
    sweep.metric = 'eval/elbo'  # results.json metric that ranks trials and is plotted
    sweep.mode = 'max'  # 'max' | 'min': which end of sweep.metric is best
    return config
