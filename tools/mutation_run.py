"""Bounded mutmut run: a preset of modules, a fast test selection and a uniform random sample of
their mutants (fixed seed), scored as killed / total with a Wilson 95 % interval.

``mutmut run`` (config in setup.cfg, ``[mutmut]``) mutates every module of the issue's paths and
takes hours; this wrapper runs mutmut 3.8.1 itself, unchanged, with the preset's ``only_mutate``
and ``pytest_add_cli_args_test_selection`` laid over setup.cfg. The whole package is copied into
``mutants/`` (``source_paths``), so the tests import the mutated copy and never the installed
checkout; mutmut's forced-fail check refuses to start otherwise.

Usage (from the repository root; one worker; docs/mutation.md)::

    python tools/mutation_run.py --list                 # the preset's mutants, per module
    python tools/mutation_run.py --sample 150 --seed 18 # sample, run, report
    python tools/mutation_run.py --sample 150 --seed 18 --part 1/3  # the sample in 3 runs
    python tools/mutation_run.py --report               # the last run's report again
    python tools/mutation_run.py --rerun NAME ...       # re-run some mutants (after a fix)
    python tools/mutation_run.py --show NAME ...        # a mutant's diff
    python tools/mutation_run.py --preset converters --sample 30 ...  # another preset

One preset per checkout: mutants/ holds one preset's results (mutmut re-collects its test
statistics when the test selection changes).
"""
import argparse
import json
import math
import os
import os.path as osp
import random
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: preset -> (modules whose wrong math matters and whose tests are fast, the tests that exercise
#: them; mutmut keeps, per mutated function, only those that call it); docs/mutation.md
PRESETS = dict(
    search=(['uninet_mm/search/reward.py', 'uninet_mm/search/stats.py',
             'uninet_mm/search/strategies.py'],
            ['tests/test_search_logic.py',
             'tests/test_search.py::test_reward_equals_accuracy_at_target_and_falls_with_flops',
             'tests/test_search.py::test_same_seed_same_token_sequences_and_resumable_state',
             'tests/test_search.py::test_ppo_learns_a_known_best_architecture_and_beats_random',
             'tests/test_search.py::test_wilcoxon_direction_and_a12_against_hand_computed_cases',
             'tests/test_search.py::test_benchmark_summary_shape_and_p_value_direction',
             'tests/test_mutation_survivors.py',
             '-k', 'not loop_reward and not naswot']),
    converters=(['uninet_mm/converters/official.py'], ['tests/test_converter.py']),
    models=(['uninet_mm/models/gops.py', 'uninet_mm/models/dsms.py',
             'uninet_mm/models/layers.py'],
            ['tests/test_references.py', 'tests/test_train_ops.py', 'tests/test_deploy.py',
             '-m', 'not slow']),
    proxy=(['uninet_mm/search/rank_agreement.py', 'uninet_mm/search/proxy.py',
            'uninet_mm/search/runner.py'],
           ['tests/test_proxy_study.py',
            'tests/test_search.py::test_candidate_hook_measures_training_loss_and_validation_nll',
            'tests/test_search.py::test_real_proxy_evaluation_through_the_runner',
            '-k', 'not harness_runs']),  # mutants/ has no docs/bench tables
    safe_load=(['uninet_mm/utils/safe_load.py'],
               ['tests/test_foundation.py', 'tests/test_bad_inputs.py',
                'tests/test_mutation_survivors.py']),
)
MODULES, TESTS = PRESETS['search']

SAMPLE_FILE = osp.join('mutants', 'sample.json')


def configure():
    """Lay the preset over setup.cfg's [mutmut] before mutmut reads its config."""
    import mutmut.configuration as cfg
    read = cfg._config_reader
    overrides = dict(
        source_paths=['uninet_mm/'], paths_to_mutate=[], tests_dir=[], only_mutate=MODULES,
        pytest_add_cli_args_test_selection=TESTS)

    def reader():
        s = read()
        return lambda key, default: overrides[key] if key in overrides else s(key, default)

    cfg._config_reader = reader
    cfg.reset_config()


def all_mutants():
    """Generate the mutants (mutmut's own generation step) and return their names, by module."""
    from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants
    from mutmut.mutation.data import SourceFileMutationData
    os.makedirs('mutants', exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    create_mutants(1)
    names = {}
    for path in MODULES:
        data = SourceFileMutationData(path=path)
        data.load()
        names[path] = sorted(data.exit_code_by_key)
    return names


def wilson(k, n, z=1.96):
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def report(names):
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    status = {}
    for path in MODULES:
        data = SourceFileMutationData(path=path)
        data.load()
        status.update({k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()})
    counts = {}
    for name in names:
        if status[name] == 'not checked':
            continue  # a part of the sample not run yet
        counts[status[name]] = counts.get(status[name], 0) + 1
    killed, total = counts.get('killed', 0), sum(counts.values())
    lo, hi = wilson(killed, total)
    print(f'killed {killed} / {total} = {killed / max(total, 1):.1%} '
          f'(Wilson 95 %: {lo:.1%} .. {hi:.1%}); ' +
          ', '.join(f'{k}: {v}' for k, v in sorted(counts.items())))
    for name in sorted(names):
        if status[name] not in ('killed', 'not checked'):
            print(f'  {status[name]:10s} {name}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--list', action='store_true', help='count the mutants per module')
    parser.add_argument('--sample', type=int, help='run a uniform random sample of N mutants')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='search')
    parser.add_argument('--seed', type=int, default=18)
    parser.add_argument('--part', default='1/1', metavar='K/M',
                        help='run the K-th of M parts of the (shuffled) sample; any parts done '
                             'form a uniform sample too')
    parser.add_argument('--report', action='store_true', help="report the last sample's run")
    parser.add_argument('--rerun', nargs='+', metavar='NAME', help='re-run these mutants')
    parser.add_argument('--show', nargs='+', metavar='NAME', help="print these mutants' diffs")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    global MODULES, TESTS
    MODULES, TESTS = PRESETS[args.preset]
    configure()
    if args.show:
        from mutmut.__main__ import cli
        for name in args.show:
            cli(['show', name], standalone_mode=False)
        return
    if args.report:
        with open(SAMPLE_FILE) as f:
            return report(json.load(f)['names'])
    names = all_mutants()
    if args.list:
        for path, keys in names.items():
            print(f'{len(keys):5d} {path}')
        print(f'{sum(map(len, names.values())):5d} total')
        return
    from mutmut.__main__ import cli
    if args.rerun:
        chosen = args.rerun
    else:
        pool = sorted(k for keys in names.values() for k in keys)
        n = min(args.sample or len(pool), len(pool))
        sample = random.Random(args.seed).sample(pool, n)  # in random order
        k, m = map(int, args.part.split('/'))
        chosen = sample[(k - 1) * n // m:k * n // m]
        with open(SAMPLE_FILE, 'w') as f:
            json.dump(dict(seed=args.seed, population=len(pool), names=sample), f, indent=1)
    try:
        cli(['run', '--max-children', '1', *chosen], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    report(chosen)


if __name__ == '__main__':
    sys.exit(main())
