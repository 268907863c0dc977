"""Fashion-MNIST from its four official IDX files: 60,000 train and 10,000 test images."""

from gen_models.data.builders import idx


class GenModelsFashionMnist(idx.IdxBuilder):
    """Fashion-MNIST (Xiao et al. 2017), Zalando article images, 28x28x1, 10 classes."""

    SUBDIR = 'fashion_mnist'
    MIRRORS = (
        'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
        'https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/',
    )
    # Per file: the sha256 of the project's canonical copy in ../shared/data (computed from it;
    # a re-compressed gzip: the decompressed train images have the official md5), then that of
    # the official download (as TFDS records it in url_checksums/fashion_mnist.txt).
    SHA256 = {
        'train-images-idx3-ubyte.gz': (
            'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
            '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
        ),
        'train-labels-idx1-ubyte.gz': (
            '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
            'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
        ),
        't10k-images-idx3-ubyte.gz': (
            'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
            '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
        ),
        't10k-labels-idx1-ubyte.gz': (
            '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
            '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
        ),
    }
    CLASS_NAMES = (
        'T-shirt/top',
        'Trouser',
        'Pullover',
        'Dress',
        'Coat',
        'Sandal',
        'Shirt',
        'Sneaker',
        'Bag',
        'Ankle boot',
    )
    HOMEPAGE = 'https://github.com/zalandoresearch/fashion-mnist'
