"""MNIST from the four official IDX files: 60,000 train and 10,000 test digits."""

from gen_models.data.builders import idx


class GenModelsMnist(idx.IdxBuilder):
    """MNIST handwritten digits (LeCun et al.), 28x28x1, labels 0-9."""

    SUBDIR = 'mnist'
    MIRRORS = (
        'https://ossci-datasets.s3.amazonaws.com/mnist/',
        'http://yann.lecun.com/exdb/mnist/',
        'https://storage.googleapis.com/cvdf-datasets/mnist/',
    )
    CLASS_NAMES = tuple(str(d) for d in range(10))
    HOMEPAGE = 'http://yann.lecun.com/exdb/mnist/'
