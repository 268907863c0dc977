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
    # Per file: the sha256 of the project's canonical copy in ../shared/data (computed from it;
    # a re-compressed gzip, whose decompressed IDX files have the official md5 digests), then
    # that of the official download (as TFDS records it in url_checksums/mnist.txt).
    SHA256 = {
        'train-images-idx3-ubyte.gz': (
            '0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971',
            '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
        ),
        'train-labels-idx1-ubyte.gz': (
            '1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203',
            '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
        ),
        't10k-images-idx3-ubyte.gz': (
            '1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be',
            '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
        ),
        't10k-labels-idx1-ubyte.gz': (
            'b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b',
            'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
        ),
    }
    CLASS_NAMES = tuple(str(d) for d in range(10))
    HOMEPAGE = 'http://yann.lecun.com/exdb/mnist/'
