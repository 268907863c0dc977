"""Evaluation metrics beyond the eval step: what `config.eval.metrics` may name.

- 'iwae': the IWAE bound on log p(x) with `eval.iwae_samples` importance samples (encoders).
- 'fid', 'kid': FID and KID of `eval.num_samples` generated images against a reference split,
  in the features of the standard FID Inception.
- 'parzen': Parzen-window log-likelihood of the test split under generated samples, with its
  mean over each class's test images for labelled datasets.
- 'parzen_reference': the same estimate with real images (`eval.parzen_reference_split`) in
  place of the samples: the value for a model that reproduced the training data.
- 'classifier_score': the Inception Score formula with a classifier trained on the dataset.
- 'class_accuracy': how often that classifier recognises the class a conditional model was
  asked for (balanced requests, one class after another).
- 'precision_recall': k-NN precision and recall (Kynkäänniemi et al. 2019) in the features
  FID uses.

The hybrid's transformation accuracy (MSE, PSNR, SSIM of outputs against exact targets) is part
of its eval step: `gen_models.metrics.transformation`.

FID, KID, precision and recall use the standard FID Inception, or (`eval.feature_net = 'classifier'`) the
penultimate layer of that classifier: fast dataset-specific variants.
"""

FEATURE_METRICS = ('fid', 'kid', 'precision_recall')  # in the features of eval.feature_net
CLASSIFIER_METRICS = ('classifier_score', 'class_accuracy')  # need the trained classifier
SAMPLE_METRICS = (*FEATURE_METRICS, 'parzen', *CLASSIFIER_METRICS)  # need generated images
METRICS = ('iwae', *SAMPLE_METRICS, 'parzen_reference')
OUTPUTS = {  # the values each metric reports (results.json's eval/<value>), besides the
    # per-class means '<parzen metric>_class_<c>' of labelled datasets
    'iwae': ('iwae',),
    'fid': ('fid',),
    'kid': ('kid', 'kid_std'),
    'precision_recall': ('precision', 'recall'),
    'parzen': ('parzen', 'parzen_stderr', 'parzen_validation'),
    'parzen_reference': (
        'parzen_reference',
        'parzen_reference_stderr',
        'parzen_reference_validation',
    ),
    'classifier_score': ('classifier_score',),
    'class_accuracy': ('class_accuracy',),
}
