"""Flax linen modules: DCGAN-style conv stacks, SNGAN-style ResNets and MLPs."""

from gen_models.nets.conv import DownConvStack, UpConvStack, check_image_shape, num_stages
from gen_models.nets.mlp import ACTIVATIONS, MLP, MaxoutDiscriminator, MLPGenerator
from gen_models.nets.resnet import ResNetDiscriminator, ResNetGenerator

__all__ = [
    'ACTIVATIONS',
    'DownConvStack',
    'MLP',
    'MLPGenerator',
    'MaxoutDiscriminator',
    'ResNetDiscriminator',
    'ResNetGenerator',
    'UpConvStack',
    'check_image_shape',
    'num_stages',
]
