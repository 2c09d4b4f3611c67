"""smoothcert: certified robustness of image classifiers by randomized ablation (L0, Levine &
Feizi 2020) and randomized smoothing.

The public API mirrors the ``smoothcert`` command line; see README.md. The paper reproductions
(:mod:`smoothcert.reproductions`) load on first use of one of their names here.
"""

from .attacks import (
    DeterministicOracle,
    ModelOracle,
    PatchAttack,
    Pointwise,
    SmoothedOracle,
    SparseRS,
    make_attack,
    oracle_factory,
)
from .attacks.substitute import (
    JacobianAugmentation,
    fgsm,
    run_substitute,
    transfer_rate,
)
from .bounds import median_attack_magnitude, read_attack_log, soundness, table2
from .certificates import (
    class_bounds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    delta,
    max_certifiable_radius,
    radius_cor1,
    radius_cor2,
    radius_jia,
    radius_jia_topk,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .data import ImageDataset, load_dataset
from .denoisers import (
    DnCNN,
    denoise,
    denoised_classifier,
    smoothed_denoised,
    train_denoiser,
)
from .deterministic import DeterministicClassifier, certified_against, partition_radius
from .gaussian import (
    certify_gaussian,
    max_gaussian_radius,
    radius_cohen,
    radius_lipschitz,
    radius_lp,
    radius_two_class,
)
from .information import mutual_information_ablation, mutual_information_lee
from .lee import (
    certify_lee,
    exact_threshold,
    lee_threshold,
    max_certifiable_radius_lee,
    radius_lee,
)
from .locking import InUseError
from .methods import (
    METHODS,
    Consistency,
    Macer,
    NoiseAugmentation,
    SmoothAdv,
    Stability,
    make_method,
)
from .models import Interpolate, MnistCNN, Normalize, PixelTransformer, ResNet18, ResNet50, build_model
from .noises import (
    Ablation,
    Bands,
    Gaussian,
    Lee,
    Partition,
    ablate,
    make_noise,
    sample_keep_mask,
)
from .report import read_log, summarize
from .runner import read_adversarial, run_attack, run_dataset, select_indices
from .runner.shards import Shard, merge_logs, run_sharded
from .sequential import (
    Adaptive,
    GroupSequentialCP,
    MixtureCS,
    mixture_lower,
    mixture_upper,
)
from .smooth import ABSTAIN, Certificate, SmoothedClassifier
from .speed import accelerate
from .train import RECIPES, Recipe, fit, get_recipe, train_classifier

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN", "Ablation", "Adaptive", "GroupSequentialCP", "MixtureCS", "mixture_lower", "mixture_upper", "DnCNN", "JacobianAugmentation", "denoise", "denoised_classifier",
    "reproduce_denoised", "smoothed_denoised", "train_denoiser", "ModelOracle", "Pointwise", "SmoothedOracle", "SparseRS",
    "fgsm", "make_attack", "median_attack_magnitude", "oracle_factory", "read_adversarial", "read_attack_log",
    "run_attack", "run_substitute", "soundness", "table2", "transfer_rate", "Certificate", "Consistency", "Gaussian", "ImageDataset", "METHODS", "Macer",
    "Interpolate", "MnistCNN", "NoiseAugmentation", "Normalize", "PixelTransformer", "RECIPES", "Recipe", "ResNet18", "ResNet50",
    "SmoothAdv", "SmoothedClassifier", "Stability", "ablate", "build_model", "certify_gaussian", "class_bounds",
    "clopper_pearson_lower", "clopper_pearson_upper", "delta", "demo", "fit", "get_recipe",
    "load_checkpoint", "load_dataset", "make_method", "make_noise", "max_certifiable_radius", "max_gaussian_radius", "mutual_information_ablation",
    "mutual_information_lee", "radius_cohen", "radius_cor1", "radius_cor2", "radius_jia", "radius_jia_topk",
    "radius_lipschitz", "radius_lp", "radius_two_class", "read_log",
    "reproduce", "run_dataset", "sample_keep_mask", "save_checkpoint", "select_indices", "summarize",
    "train_classifier",
    "InUseError", "Shard", "accelerate", "merge_logs", "run_sharded",
    "Lee", "certify_lee", "exact_threshold", "lee_threshold", "max_certifiable_radius_lee", "radius_lee",
    "reproduce_table7",
    "Bands", "DeterministicClassifier", "DeterministicOracle", "Partition", "PatchAttack",
    "certified_against", "partition_radius", "reproduce_partition", "reproduce_patch",
]

# served by smoothcert.reproductions, imported on first access (PEP 562); the package is named apart
# from the function ``reproduce``, so importing it never rebinds that name here
_REPRODUCTIONS = ("demo", "reproduce", "reproduce_denoised", "reproduce_partition", "reproduce_patch", "reproduce_table7")


def __getattr__(name: str) -> object:
    if name in _REPRODUCTIONS:
        from . import reproductions

        return getattr(reproductions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
