"""smoothcert: certified robustness of image classifiers by randomized ablation (L0, Levine &
Feizi 2020) and randomized smoothing.

The public API mirrors the ``smoothcert`` command line; see README.md. Layout: threat models in
[`smoothcert.noises`][smoothcert.noises] and their certificates in [`smoothcert.certificates`][smoothcert.certificates] (mirrored by
name), classifiers in [`smoothcert.classifiers`][smoothcert.classifiers], attacks in [`smoothcert.attacks`][smoothcert.attacks], the
dataset runner in [`smoothcert.runner`][smoothcert.runner], reports in [`smoothcert.reports`][smoothcert.reports], training in
[`smoothcert.training`][smoothcert.training], runtime helpers in [`smoothcert.runtime`][smoothcert.runtime] and the paper
reproductions in [`smoothcert.reproductions`][smoothcert.reproductions] (imported only when used).
"""

from . import _moved
from .attacks import (
    DeterministicOracle,
    ModelOracle,
    PatchAttack,
    Pointwise,
    SmoothedOracle,
    SparseRS,
    make_attack,
)
from .attacks.substitute import (
    JacobianAugmentation,
    fgsm,
    run_substitute,
    transfer_rate,
)
from .certificates import (
    certified_against,
    certify_gaussian,
    certify_lee,
    class_bounds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    delta,
    exact_threshold,
    lee_threshold,
    max_certifiable_radius,
    max_certifiable_radius_lee,
    max_gaussian_radius,
    mutual_information_ablation,
    mutual_information_lee,
    partition_radius,
    radius_cohen,
    radius_cor1,
    radius_cor2,
    radius_jia,
    radius_jia_topk,
    radius_lee,
    radius_lipschitz,
    radius_lp,
    radius_two_class,
)
from .certificates.sequential import (
    ABSTAIN,
    Adaptive,
    GroupSequentialCP,
    MixtureCS,
    mixture_lower,
    mixture_upper,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .classifiers import (
    Certificate,
    DenoisedClassifier,
    DeterministicClassifier,
    SmoothedClassifier,
    Undefended,
    load_classifier,
    smoothed_denoised,
)
from .data import ImageDataset, load_dataset
from .denoisers import DnCNN, denoised_classifier, train_denoiser
from .models import (
    Interpolate,
    MnistCNN,
    Normalize,
    PixelTransformer,
    ResNet18,
    ResNet50,
    build_model,
)
from .noises import (
    Ablation,
    Bands,
    Gaussian,
    Lee,
    Partition,
    ThreatModel,
    ablate,
    make_noise,
    noise_from_config,
    register_noise,
    sample_keep_mask,
)
from .reports import (
    median_attack_magnitude,
    read_attack_log,
    read_log,
    soundness,
    summarize,
    table2,
)
from .options import DataOptions, RuntimeOptions, SamplingOptions
from .runner import read_adversarial, run_attack, run_dataset, select_indices
from .runner.jobs import denoise, oracle_factory
from .runner.shards import Shard, merge_logs, run_sharded
from .runtime.locking import InUseError
from .runtime.speed import accelerate
from .training import (
    METHODS,
    RECIPES,
    Consistency,
    Macer,
    NoiseAugmentation,
    Recipe,
    SmoothAdv,
    Stability,
    fit,
    get_recipe,
    make_method,
    train_classifier,
)

__version__ = "0.1.0"

_REPRODUCTIONS = ("demo", "reproduce", "reproduce_denoised", "reproduce_partition", "reproduce_patch",
                  "reproduce_table7")


def __getattr__(name: str) -> object:
    """The paper reproductions, imported on first use (``import smoothcert`` does not load them)."""
    if name in _REPRODUCTIONS:
        from . import reproductions

        return getattr(reproductions, name)
    raise AttributeError(f"module 'smoothcert' has no attribute {name!r}")


_moved.install()  # old import paths of moved modules keep working for one release

__all__ = [
    'ABSTAIN', 'Ablation', 'Adaptive', 'Bands', 'Certificate', 'Consistency', 'DataOptions', 'DenoisedClassifier',
    'DeterministicClassifier',
    'DeterministicOracle', 'DnCNN', 'Gaussian', 'GroupSequentialCP', 'ImageDataset', 'InUseError', 'Interpolate', 'JacobianAugmentation',
    'Lee', 'METHODS', 'Macer', 'MixtureCS', 'MnistCNN', 'ModelOracle', 'NoiseAugmentation', 'Normalize',
    'Partition', 'PatchAttack', 'PixelTransformer', 'Pointwise', 'RECIPES', 'Recipe', 'ResNet18', 'ResNet50', 'RuntimeOptions',
    'SamplingOptions',
    'Shard', 'SmoothAdv', 'SmoothedClassifier', 'SmoothedOracle', 'SparseRS', 'Stability', 'ThreatModel', 'Undefended',
    'ablate', 'accelerate', 'build_model', 'certified_against', 'certify_gaussian', 'certify_lee', 'class_bounds', 'clopper_pearson_lower',
    'clopper_pearson_upper', 'delta', 'demo', 'denoise', 'denoised_classifier', 'exact_threshold', 'fgsm', 'fit',
    'get_recipe', 'lee_threshold', 'load_checkpoint', 'load_classifier', 'load_dataset', 'make_attack', 'make_method', 'make_noise',
    'max_certifiable_radius', 'max_certifiable_radius_lee', 'max_gaussian_radius', 'median_attack_magnitude', 'merge_logs', 'mixture_lower', 'mixture_upper', 'mutual_information_ablation',
    'mutual_information_lee', 'noise_from_config', 'oracle_factory', 'partition_radius', 'radius_cohen', 'radius_cor1', 'radius_cor2', 'radius_jia',
    'radius_jia_topk', 'radius_lee', 'radius_lipschitz', 'radius_lp', 'radius_two_class', 'read_adversarial', 'read_attack_log', 'read_log',
    'register_noise', 'reproduce', 'reproduce_denoised', 'reproduce_partition', 'reproduce_patch', 'reproduce_table7', 'run_attack', 'run_dataset',
    'run_sharded', 'run_substitute', 'sample_keep_mask', 'save_checkpoint', 'select_indices', 'smoothed_denoised', 'soundness', 'summarize',
    'table2', 'train_classifier', 'train_denoiser', 'transfer_rate',
]
