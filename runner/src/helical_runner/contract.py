"""What the runner image promises its callers, written once on this side (docs/contracts.md).

The workflow's side is dags/helical_workflow/contract.py; tests/contract/ checks that the two agree, and
that the image (runner/Dockerfile) and runner/README.md say the same. The outputs' shapes are
runner/schemas/*.schema.json.
"""

# Exit codes: 1 and 2 are the caller's to fix (never retried); 3, 137 and 143 are worth a retry.
EXIT_OK, EXIT_DATASET_FAILED, EXIT_CONFIG, EXIT_UNEXPECTED, EXIT_TERMINATED = 0, 1, 2, 3, 143
# The container's mount points, the defaults of --data, --output-dir and --model-dir.
DATA_DIR, OUTPUT_DIR, MODEL_DIR = "/data", "/results", "/models"
DEVICES = ("auto", "cpu", "cuda")
CLASSIFIER_MODES = ("auto", "on", "off")
# ENCODER: auto picks one of the other two (metrics.json `encoder` names it).
ENCODERS = ("auto", "helical", "packed")
