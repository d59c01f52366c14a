"""Checkers for learners' own code, and the command that builds the student notebooks.

A checker runs the learner's function on small hand-made cases, compares with the reference,
and returns a :class:`CheckResult` that displays as a pass, or as a fail with a hint. Hints
come from recognising the *typical* wrong answers (a formula missing its bias, the input size
used where the output size belongs, bits not converted to bytes...), not just from a mismatch.

Notebooks hold their solutions between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student
version replaces each block with ``raise NotImplementedError`` and clears all outputs::

    python -m course_lib.exercises student notebooks --out student
"""

from .checking import CheckResult
from .efficiency import check_conv_cost, check_storage_bytes, conv_cost_reference, storage_bytes_reference
from .pruning import check_magnitude_prune, check_select_channels
from .quantization import check_kmeans_quantize, check_linear_quantize
from .student import (BEGIN, END, build_student_notebooks, count_solution_blocks, main, strip_solutions,
                      student_notebook)

__all__ = ["CheckResult", "check_conv_cost", "check_storage_bytes", "conv_cost_reference",
           "storage_bytes_reference", "check_magnitude_prune", "check_select_channels",
           "check_kmeans_quantize", "check_linear_quantize", "BEGIN", "END", "build_student_notebooks",
           "count_solution_blocks", "main", "strip_solutions", "student_notebook"]
