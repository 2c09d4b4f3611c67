"""Reports from the logs: certified accuracy and its summaries ([`certified`][.certified], Levine &
Feizi 2020, Results), attack logs against certificates ([`empirical`][.empirical], Table 2) and figures
([`figures`][.figures])."""

from .certified import (
    RunLog,
    average_certified_radius,
    certified_accuracy,
    format_table,
    median_certified_robustness,
    read_log,
    summarize,
)
from .combined import report
from .empirical import (
    AttackLog,
    is_attack_log,
    median_attack_magnitude,
    read_attack_log,
    soundness,
    summarize_attack,
    table2,
)
from .figures import plot_ablated_samples, plot_certified_accuracy, plot_delta

__all__ = ["AttackLog", "RunLog", "average_certified_radius", "certified_accuracy", "format_table",
           "is_attack_log", "median_attack_magnitude", "median_certified_robustness", "plot_ablated_samples",
           "plot_certified_accuracy", "plot_delta", "read_attack_log", "read_log", "report", "soundness", "summarize",
           "summarize_attack", "table2"]
