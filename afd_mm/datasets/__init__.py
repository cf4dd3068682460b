from .fashion_mnist import FashionMNIST
from .mit67 import MIT67
from .stanford40 import Stanford40
from .stanford_dogs import StanfordDogs
from .tiny_imagenet import TinyImageNet

__all__ = ['FashionMNIST', 'TinyImageNet', 'MIT67', 'Stanford40',
           'StanfordDogs']
