"""uninet_mm.utils.worker: the benchmarks' one-result-per-process protocol."""
import sys

from uninet_mm.utils.worker import run_worker


def test_result_line_is_read_among_other_output():
    code = ("from uninet_mm.utils.worker import print_result; print('log line'); "
            "print_result({'a': 1, 'b': [2.5]}); print('after')")
    assert run_worker([sys.executable, '-c', code]) == {'a': 1, 'b': [2.5]}


def test_a_worker_that_dies_gives_its_exit_status_and_last_line():
    code = "import sys; print('first'); sys.stderr.write('boom: out of memory\\n'); sys.exit(3)"
    assert run_worker([sys.executable, '-c', code]) == {
        'error': 'worker exit 3: boom: out of memory'}
    assert run_worker([sys.executable, '-c', 'pass']) == {'error': 'worker exit 0: no output'}
