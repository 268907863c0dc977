"""The same models in PyTorch eager: the alternative the benchmark measures us against.

`build(config, image_shape)` returns a `TorchModel` whose `train_step` does what the JAX
`ModelDef.train_step` does for the config: the DCGAN (one D update on real and generated
images, then one G update against the updated D, reusing G's forward pass; non-saturating
or min-max G loss), the conv VAE and the MLP VAE (Bernoulli likelihood, dynamic
binarisation, analytic KL), with identical layer shapes and the same optimisers. It is
written as a careful PyTorch user would: channels-last tensors, fused Adam, no gradients
for D's parameters in G's update. It runs on any torch device (`build(..., device='cuda')`:
the networks, their optimiser state and the step's random draws live there; batches must be
moved there by the caller). Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gen_models.losses import GENERATOR_LOSSES
from gen_models.nets import num_stages

ACTIVATIONS = {
    'tanh': nn.Tanh,
    'relu': nn.ReLU,
    'softplus': nn.Softplus,
    'leaky_relu': nn.LeakyReLU,
}
Metrics = dict[str, torch.Tensor]


def _same_padding(kernel_size: int) -> int:
    """Symmetric padding that makes a stride-2 conv halve an even side (flax 'SAME')."""
    return (kernel_size - 1) // 2


class UpConvStack(nn.Module):
    """`gen_models.nets.UpConvStack`: Linear -> [ConvTranspose2d stride 2 -> norm -> ReLU]*
    -> ConvTranspose2d, each transposed conv doubling the sides."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        width: int,
        kernel_size: int,
        use_batch_norm: bool,
        output_activation: str,
    ):
        super().__init__()
        stages = num_stages(image_shape)
        height, width_px, channels = image_shape
        self.base = (width * 2 ** (stages - 1), height // 2**stages, width_px // 2**stages)
        base_size = int(np.prod(self.base))
        self.dense = nn.Linear(latent_dim, base_size, bias=not use_batch_norm)
        self.dense_norm = nn.BatchNorm1d(base_size) if use_batch_norm else nn.Identity()
        padding = _same_padding(kernel_size)
        output_padding = 2 * padding - (kernel_size - 2)
        layers: list[nn.Module] = []
        features = self.base[0]
        for stage in range(stages - 1):
            features_out = width * 2 ** (stages - 2 - stage)
            layers += [
                nn.ConvTranspose2d(
                    features,
                    features_out,
                    kernel_size,
                    stride=2,
                    padding=padding,
                    output_padding=output_padding,
                    bias=not use_batch_norm,
                ),
                nn.BatchNorm2d(features_out) if use_batch_norm else nn.Identity(),
                nn.ReLU(),
            ]
            features = features_out
        layers.append(
            nn.ConvTranspose2d(
                features,
                channels,
                kernel_size,
                stride=2,
                padding=padding,
                output_padding=output_padding,
            )
        )
        if output_activation == 'tanh':
            layers.append(nn.Tanh())
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.dense_norm(self.dense(z)))
        h = h.view(z.shape[0], *self.base).contiguous(memory_format=torch.channels_last)
        return self.convs(h)


class DownConvStack(nn.Module):
    """`gen_models.nets.DownConvStack`: [Conv2d stride 2 -> LeakyReLU(0.2) -> Dropout]*
    -> flatten -> Linear(outputs)."""

    def __init__(
        self,
        outputs: int,
        image_shape: Sequence[int],
        width: int,
        kernel_size: int,
        dropout_rate: float,
    ):
        super().__init__()
        stages = num_stages(image_shape)
        layers: list[nn.Module] = []
        features = image_shape[2]
        for stage in range(stages):
            layers += [
                nn.Conv2d(
                    features,
                    width * 2**stage,
                    kernel_size,
                    stride=2,
                    padding=_same_padding(kernel_size),
                ),
                nn.LeakyReLU(0.2),
            ]
            if dropout_rate > 0:
                layers.append(nn.Dropout(dropout_rate))
            features = width * 2**stage
        side = image_shape[0] // 2**stages, image_shape[1] // 2**stages
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.dense = nn.Linear(features * side[0] * side[1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(x))


class MLP(nn.Module):
    """`gen_models.nets.MLP`: flatten -> [Linear -> activation]* -> Linear -> reshape."""

    def __init__(
        self, inputs: int, hidden: Sequence[int], output_shape: Sequence[int], activation: str
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(inputs, size), ACTIVATIONS[activation]()]
            inputs = size
        layers.append(nn.Linear(inputs, int(np.prod(output_shape))))
        self.net = nn.Sequential(*layers)
        self.output_shape = tuple(output_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0], *self.output_shape)


@dataclasses.dataclass
class TorchModel:
    """Networks by name (as the JAX model's params) and one training step on uint8 images
    laid out (N, C, H, W); returns its losses (no host sync)."""

    networks: dict[str, nn.Module]
    train_step: Callable[[torch.Tensor], Metrics]


def make_optimizer(
    optim_config: ml_collections.ConfigDict, learning_rate: float, params
) -> torch.optim.Optimizer:
    """The torch twin of `gen_models.optim.make_optimizer` for 'adam' and 'adagrad'."""
    if optim_config.name == 'adam':
        return torch.optim.Adam(
            params,
            lr=learning_rate,
            betas=(optim_config.b1, optim_config.b2),
            eps=optim_config.eps,
            fused=True,
        )
    if optim_config.name == 'adagrad':
        return torch.optim.Adagrad(
            params, lr=learning_rate, eps=optim_config.eps, initial_accumulator_value=0.1
        )
    raise ValueError(f'optim.name={optim_config.name!r}: the torch reference has adam, adagrad')


def _generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == 'minimax':
        return -F.softplus(fake_logits)
    if kind == 'non_saturating':
        return F.softplus(-fake_logits)
    raise ValueError(f'generator loss {kind!r}: allowed {GENERATOR_LOSSES}')


def _build_gan(
    config: ml_collections.ConfigDict, image_shape: Sequence[int], device: torch.device
) -> TorchModel:
    model_config = config.model
    generator = UpConvStack(
        model_config.latent_dim,
        image_shape,
        model_config.width,
        model_config.kernel_size,
        use_batch_norm=True,
        output_activation='tanh',
    ).to(device)
    discriminator = DownConvStack(
        1, image_shape, model_config.width, model_config.kernel_size, model_config.d_dropout
    ).to(device)
    g_opt = make_optimizer(config.optim, config.lr, generator.parameters())
    d_opt = make_optimizer(
        config.optim, config.lr * config.optim.d_lr_multiplier, discriminator.parameters()
    )

    def train_step(images: torch.Tensor) -> Metrics:
        real = images.float() / 127.5 - 1.0
        fake = generator(torch.randn(images.shape[0], model_config.latent_dim, device=device))
        d_opt.zero_grad(set_to_none=True)
        d_loss = (
            F.softplus(-discriminator(real)) + F.softplus(discriminator(fake.detach()))
        ).mean()
        d_loss.backward()
        d_opt.step()
        discriminator.requires_grad_(False)
        g_loss = _generator_loss(discriminator(fake), model_config.gan_loss).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        discriminator.requires_grad_(True)
        return {'d_loss': d_loss.detach(), 'g_loss': g_loss.detach()}

    return TorchModel({'generator': generator, 'discriminator': discriminator}, train_step)


def _build_vae(
    config: ml_collections.ConfigDict, image_shape: Sequence[int], device: torch.device
) -> TorchModel:
    model_config = config.model
    if model_config.likelihood != 'bernoulli':
        raise ValueError('the torch reference VAE has the Bernoulli likelihood only')
    latent_dim = model_config.latent_dim
    if model_config.net == 'mlp':
        encoder = MLP(
            int(np.prod(image_shape)),
            model_config.hidden,
            (2 * latent_dim,),
            model_config.activation,
        )
        decoder = MLP(
            latent_dim, tuple(reversed(model_config.hidden)), image_shape, model_config.activation
        )
        to_layout = lambda x: x.permute(0, 2, 3, 1)  # noqa: E731 (flattens as NHWC does)
    else:
        encoder = DownConvStack(
            2 * latent_dim, image_shape, model_config.width, model_config.kernel_size, 0.0
        )
        decoder = UpConvStack(
            latent_dim,
            image_shape,
            model_config.width,
            model_config.kernel_size,
            use_batch_norm=False,
            output_activation='none',
        )
        to_layout = lambda x: x  # noqa: E731
    encoder, decoder = encoder.to(device), decoder.to(device)
    opt = make_optimizer(config.optim, config.lr, [*encoder.parameters(), *decoder.parameters()])

    def train_step(images: torch.Tensor) -> Metrics:
        x = to_layout(images.float() / 255.0)
        if config.dataset.binarize:
            x = (torch.rand_like(x) < x).float()
        mean, log_var = encoder(x).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = decoder(z)
        log_likelihood = -(F.softplus(logits) - x * logits).flatten(1).sum(1)
        kl = 0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(1)
        loss = -(log_likelihood - model_config.beta * kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {'loss': loss.detach()}

    return TorchModel({'encoder': encoder, 'decoder': decoder}, train_step)


def build(
    config: ml_collections.ConfigDict, image_shape: Sequence[int], device: str = 'cpu'
) -> TorchModel:
    """The torch twin of `gen_models.models.build_model(config, info)` for `image_shape`,
    on the torch `device`."""
    if config.model.name == 'gan':
        return _build_gan(config, image_shape, torch.device(device))
    if config.model.name == 'vae':
        return _build_vae(config, image_shape, torch.device(device))
    raise ValueError(f'model.name={config.model.name!r}: the torch reference has gan, vae')


def to_torch_images(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> (N, C, H, W) channels-last tensor, without a copy."""
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def parameter_sizes(network: nn.Module) -> list[int]:
    """Sorted element counts of the network's trainable parameter tensors."""
    return sorted(p.numel() for p in network.parameters())
