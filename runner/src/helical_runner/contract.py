"""What the runner image promises its callers, on this side (docs/contracts.md).

The shared names (mount points, exit codes) come from names.py, which `make generate` renders from names.yaml,
like the workflow's copy. The outputs' shapes are runner/schemas/*.schema.json.
"""

from helical_runner.names import DATA_DIR, EXIT_CONFIG, EXIT_DATASET_FAILED, EXIT_OK, EXIT_TERMINATED, EXIT_UNEXPECTED
from helical_runner.names import MODELS_DIR as MODEL_DIR
from helical_runner.names import RESULTS_DIR as OUTPUT_DIR

__all__ = ["DATA_DIR", "EXIT_CONFIG", "EXIT_DATASET_FAILED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_UNEXPECTED",
           "MODEL_DIR", "OUTPUT_DIR"]

DEVICES = ("auto", "cpu", "cuda")
CLASSIFIER_MODES = ("auto", "on", "off")
# ENCODER: auto picks one of the other two (metrics.json `encoder` names it).
ENCODERS = ("auto", "helical", "packed")
