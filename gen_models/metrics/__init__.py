"""Evaluation metrics beyond the eval step: what `config.eval.metrics` may name.

- 'iwae': the IWAE bound on log p(x) with `eval.iwae_samples` importance samples (encoders).
- 'fid', 'kid': FID and KID of `eval.num_samples` generated images against a reference split,
  in the features of the standard FID Inception.
- 'parzen': Parzen-window log-likelihood of the test split under generated samples.
"""

METRICS = ('iwae', 'fid', 'kid', 'parzen')
