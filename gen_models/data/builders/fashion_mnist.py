"""Fashion-MNIST from its four official IDX files: 60,000 train and 10,000 test images."""

from gen_models.data.builders import idx


class GenModelsFashionMnist(idx.IdxBuilder):
    """Fashion-MNIST (Xiao et al. 2017), Zalando article images, 28x28x1, 10 classes."""

    SUBDIR = 'fashion_mnist'
    MIRRORS = (
        'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
        'https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/',
    )
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
