"""AutoML and neural architecture search (NAS): let a search design the network, for a device.

The survey's §8. Notebook 05 designed small networks by hand; here a program does it, under the
same hardware limits. Each submodule's docstring gives the maths and the papers; they are listed
bottom-up, each using only the ones above it:

* :mod:`~course_lib.nas.space`: the search space as data (stages of block type, width, kernel,
  depth, expansion; input resolution), built with :func:`course_lib.architectures.build_model`;
  :func:`sample`, :func:`mutate`, :func:`crossover`, :func:`check_in_space`.
* :mod:`~course_lib.nas.costs`: a candidate's costs without training (parameters, MACs, int8
  flash, peak SRAM, roofline latency on a device) and the limits it violates.
* :mod:`~course_lib.nas.pareto`: the accuracy-cost Pareto front and its hypervolume.
* :mod:`~course_lib.nas.strategies`: random search, regularised evolution (Real et al. 2019),
  a REINFORCE controller (Zoph & Le 2017), Optuna's TPE and NSGA-II, over one objective and one
  budget of evaluations.
* :mod:`~course_lib.nas.supernet`: a Once-for-All weight-sharing supernet (Cai et al. 2020):
  elastic width, kernel and depth, sandwich-rule training, subnet extraction, batch-norm
  re-estimation, :class:`SubnetEvaluator` (validation accuracy of a subnet in a fraction of a second).
* :mod:`~course_lib.nas.darts`: DARTS (Liu et al. 2019) on one small cell.
* :mod:`~course_lib.nas.proxies`: zero-cost proxies at initialisation (synflow, NASWOT) and the
  rank correlations that judge them (Kendall's tau, Spearman's rho).
* :mod:`~course_lib.nas.compression`: AutoML for compression (AMC / HAQ): per-layer sparsity and
  bits chosen by Optuna under a flash budget, against the best uniform setting.
* :mod:`~course_lib.nas.parallel`: worker processes sharing one Optuna study through a journal file.
* :mod:`~course_lib.nas.standalone`: a space designed around the device (MCUNet's rule,
  :func:`fitting_macs`, :data:`TIGHT_SPACE`) and candidates judged by short stand-alone training
  (:class:`ShortTraining`).

Every public name is importable from here (``nas.sample``, ``nas.train_supernet``). Randomness
always comes in as a seed or a generator; library code never prints.
Taught in ``notebooks/07_automl_search.ipynb`` and ``notebooks/08_nas_for_a_device.ipynb``.
"""

from .space import (SPACE_BLOCKS, STAGE_DECISIONS, OutOfSpaceError, SearchSpace, active_decisions, check_in_space,
                    check_rng, choose, crossover, decisions, describe_architecture, from_choices, mutate, sample,
                    space_size, to_choices)
from .costs import (DEVICES, LIMITS, TIGHT_BUDGET, CandidateCosts, Constraints, candidate_costs, device_constraints,
                    search_device, violated_limits)
from .pareto import dominates, hypervolume, pareto_front
from .strategies import (STRATEGIES, Candidate, SearchResult, constraint_values, nsga2_search,
                         random_search, regularized_evolution, reinforce_search, run_search, softmax,
                         tpe_search)
from .supernet import (SUPERNET_BLOCKS, TRAINING_RULES, ElasticBlock, ElasticConvBN, SubnetEvaluator, Supernet,
                       SupernetTraining, fashion_evaluator, recalibrate_batch_norm, train_supernet)
from .darts import DARTS_OPS, EDGES, DartsNetwork, DartsResult, MixedOp, darts_search, discretize
from .proxies import activation_codes, kendall_tau, naswot, proxy_scores, ranks, spearman_rho, synflow
from .compression import CompressionSearchResult, apply_policy, policy_bytes, search_compression
from .parallel import (SpaceObjective, StoragePathError, check_storage_path, journal_storage, run_parallel_study)
from .standalone import TIGHT_SPACE, ShortTraining, fitting_macs

__all__ = [
    # space
    "SearchSpace", "OutOfSpaceError", "SPACE_BLOCKS", "STAGE_DECISIONS", "decisions", "space_size", "from_choices",
    "to_choices", "active_decisions", "check_in_space", "check_rng", "choose", "sample", "mutate", "crossover",
    "describe_architecture",
    # costs
    "TIGHT_BUDGET", "DEVICES", "LIMITS", "search_device", "CandidateCosts", "candidate_costs", "Constraints",
    "device_constraints", "violated_limits",
    # pareto
    "dominates", "pareto_front", "hypervolume",
    # strategies
    "STRATEGIES", "Candidate", "SearchResult", "random_search", "regularized_evolution", "reinforce_search",
    "tpe_search", "nsga2_search", "run_search", "softmax", "constraint_values",
    # supernet
    "SUPERNET_BLOCKS", "TRAINING_RULES", "ElasticConvBN", "ElasticBlock", "Supernet", "SupernetTraining",
    "train_supernet", "recalibrate_batch_norm", "SubnetEvaluator", "fashion_evaluator",
    # darts
    "DARTS_OPS", "EDGES", "MixedOp", "DartsNetwork", "DartsResult", "discretize", "darts_search",
    # proxies
    "synflow", "activation_codes", "naswot", "kendall_tau", "ranks", "spearman_rho", "proxy_scores",
    # compression
    "apply_policy", "policy_bytes", "CompressionSearchResult", "search_compression",
    # parallel
    "StoragePathError", "check_storage_path", "journal_storage", "SpaceObjective", "run_parallel_study",
    # standalone
    "TIGHT_SPACE", "fitting_macs", "ShortTraining",
]
