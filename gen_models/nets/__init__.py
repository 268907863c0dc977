"""Flax linen modules: DCGAN-style conv stacks and MLPs."""

from gen_models.nets.conv import DownConvStack, UpConvStack, check_image_shape, num_stages
from gen_models.nets.mlp import ACTIVATIONS, MLP

__all__ = ['ACTIVATIONS', 'DownConvStack', 'MLP', 'UpConvStack', 'check_image_shape', 'num_stages']
