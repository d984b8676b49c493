"""make trigger: a failed run says why, from the summary the workflow wrote."""

import json

from helical_tools.trigger import why_failed


def test_a_failed_run_prints_each_datasets_error(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"errors": {
        "/data/a.h5ad": {"error": "/data/a.h5ad: not an HDF5/h5ad file; re-export it", "exit_class": "bad_input"},
        "/data/b.h5ad": {"error": "the runner left no output and no error", "exit_class": "unknown"}}}))
    text = why_failed(api=None, dag_id="d", run_id="r", summary_path=summary)
    assert "/data/a.h5ad [bad_input]: /data/a.h5ad: not an HDF5/h5ad file; re-export it" in text
    assert "/data/b.h5ad [unknown]" in text


def test_a_run_whose_discovery_failed_says_so(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"error": "discover_datasets failed (bad `data` param)", "errors": {}}))
    assert "discover_datasets failed" in why_failed(api=None, dag_id="d", run_id="r", summary_path=summary)
