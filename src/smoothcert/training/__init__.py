"""Training the base classifiers: recipes ([`recipes`][.recipes]), the training loop ([`loop`][.loop]),
the methods of the papers ([`methods`][.methods]: noise augmentation, consistency, stability, MACER,
SmoothAdv, distillation) and data augmentation ([`augment`][.augment])."""

from .augment import augment, check_augment
from .loop import (
           accuracy_under_noise,
           describe_checkpoint,
           fit,
           refuse_overwrite,
           train_classifier,
)
from .methods import (
           METHODS,
           Consistency,
           Macer,
           Method,
           NoiseAugmentation,
           SmoothAdv,
           Stability,
           make_method,
)
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["METHODS", "RECIPES", "Consistency", "Macer", "Method", "NoiseAugmentation", "Recipe", "SmoothAdv",
           "Stability", "accuracy_under_noise", "augment", "check_augment", "describe_checkpoint", "fit",
           "get_recipe", "make_method", "refuse_overwrite", "train_classifier"]
