"""Throughput and peak memory of UniNet B0-B3 beside MMDetection's ResNet-50, Swin-T and
PVT-Tiny, and the released-layout reference (naive attention) -- figures only, no pass/fail.

    python tools/benchmark_backbones.py                       # 1x3x800x1216, 2 threads, CPU
    python tools/benchmark_backbones.py --deploy --rounds 2 --out docs/bench/cpu_deploy.json
    python tools/benchmark_backbones.py --models uninet_b1 swin_t --shape 1 3 512 512 --amp
    python tools/benchmark_backbones.py --device cuda --amp --deploy --channels-last

``--deploy`` runs UniNet's forward in its inference form (``switch_to_deploy()``), the
``--fuse-conv-bn`` forward folds BN only; models without the method run plain. Steps and
figures: docs/performance.md.

For every model, on the same input: forward (eval, no_grad) and forward+backward (train mode,
``sum of all outputs`` backward), ``--warmup`` untimed then ``--iters`` timed iterations;
images/s = batch / time of the best iteration (the mean is in the JSON too). Each model runs in
its own subprocess, so models do not share allocator state. ``--rounds R`` runs the model list
R times, interleaved, and keeps each model's best round: on a shared machine other processes
slow some runs down, and the best of several is the least disturbed figure.

Peak memory, per mode, above what is held before the mode starts (model and input, and for
forward+backward nothing else: forward's buffers are freed): on CUDA
``torch.cuda.max_memory_allocated`` (tensors only); on CPU the peak resident set size of the
process: the larger of ``VmHWM`` (/proc/self/status, reset before each mode through
/proc/self/clear_refs) and the RSS polled every 10 ms in a thread; it includes allocator
caching and fragmentation, and glibc may keep freed memory resident.
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

ALL_MODELS = ('uninet_b0', 'uninet_b1', 'uninet_b2', 'uninet_b3', 'resnet50', 'swin_t',
              'pvt_tiny', 'released_b1', 'released_b3')
REFERENCE = 'swin_t'
#: what ``--malloc env`` puts into the workers' environment (the variable form of 'keep')
MALLOC_TUNABLES = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824'


def build(name):
    """The backbone of ``name`` (see ALL_MODELS), with its dense-prediction outputs."""
    if name.startswith('uninet_'):
        import uninet_mm  # noqa: F401
        from uninet_mm.models import UniNet
        return UniNet(name.split('_', 1)[1])
    if name.startswith('released_'):
        from uninet_mm.apis.released import ReleasedUniNet
        return ReleasedUniNet(name.split('_', 1)[1], num_classes=0)
    if name == 'resnet50':
        from mmdet.models.backbones import ResNet
        return ResNet(depth=50, out_indices=(0, 1, 2, 3))
    if name == 'swin_t':
        from mmdet.models.backbones import SwinTransformer
        return SwinTransformer(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                               window_size=7, out_indices=(0, 1, 2, 3))
    if name == 'pvt_tiny':
        from mmdet.models.backbones import PyramidVisionTransformer
        return PyramidVisionTransformer(num_layers=[2, 2, 2, 2])
    raise KeyError(f'unknown model {name!r}; choose from {list(ALL_MODELS)}')


def _outputs_sum(out):
    if isinstance(out, (tuple, list)):
        return sum(o.float().sum() for o in out)
    return out.float().sum()


def run_one(name, args):
    """Benchmark one model in this process; returns a dict of figures and notes."""
    notes = []
    import torch  # noqa: F401  (imported before the allocator setting, as tools/train.py)
    if args.malloc == 'keep':  # after import torch, as tools/train.py does
        from uninet_mm.utils.malloc import keep_freed_memory
        if not keep_freed_memory():
            notes.append('--malloc keep: not glibc, default allocator')
    elif args.malloc == 'env' and MALLOC_TUNABLES not in os.environ.get('GLIBC_TUNABLES', ''):
        notes.append('--malloc env: GLIBC_TUNABLES not set in the worker (--in-process?)')
    if args.plain_train is not None:  # held for the whole run (a switch entered and dropped
        # unreferenced is closed by the garbage collector at once, which restores it)
        from uninet_mm.models.train_ops import FUNCTIONS, memory_efficient_training
        with memory_efficient_training(False, args.plain_train or FUNCTIONS):
            return _run_model(name, args, notes)
    return _run_model(name, args, notes)


def _run_model(name, args, notes):
    import torch

    from uninet_mm.utils.memory import RSSSampler, peak_rss_bytes, reset_peak_rss, rss_bytes
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = build(name).to(dev)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(*args.shape, device=dev)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    inference_form = None  # the method that turns the model into its inference form
    for flag, method in (('deploy', 'switch_to_deploy'), ('fuse_conv_bn', 'fuse_conv_bn')):
        if getattr(args, flag) and inference_form is None:
            if hasattr(model, method):
                inference_form = method
            else:
                notes.append(f'--{flag.replace("_", "-")}: no {method}() on this model, '
                             f'plain forward')
    amp_dtype = (torch.bfloat16 if dev.type == 'cpu' else torch.float16) if args.amp else None

    def autocast():
        if amp_dtype is None:
            return torch.autocast(dev.type, enabled=False)
        return torch.autocast(dev.type, dtype=amp_dtype)

    def sync():
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    sampler = []

    def mem_start():
        sync()
        if dev.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()
        if not reset_peak_rss() and not notes_have_rss_note():
            notes.append('cannot reset the peak RSS mark: CPU peak memory is the process peak')
        base = rss_bytes()
        sampler[:] = [RSSSampler().start()]
        return base

    def notes_have_rss_note():
        return any('peak RSS' in n for n in notes)

    def mem_peak(base):
        sync()
        if dev.type == 'cuda':
            return torch.cuda.max_memory_allocated() - base
        sampled = sampler.pop().stop() if sampler else 0
        return max(peak_rss_bytes(), sampled) - base

    result = dict(model=name, params=params, notes=notes)
    modes = [m for m in ('forward', 'forward_backward') if m in args.modes]
    for mode in modes:
        train = mode == 'forward_backward'
        net = model
        net.train(train)
        if not train and inference_form:
            import copy
            net = copy.deepcopy(model).eval()
            getattr(net, inference_form)()
        if args.compile:
            import torch._inductor.config as inductor_config
            inductor_config.freezing = not train  # constant-fold weights for inference
            try:
                net = torch.compile(net)
            except Exception as e:  # noqa: BLE001
                notes.append(f'--compile failed ({type(e).__name__}), eager')

        def step():
            if train:
                model.zero_grad(set_to_none=True)
                with autocast():
                    loss = _outputs_sum(net(x))
                loss.backward()
            else:
                with torch.no_grad(), autocast():
                    net(x)

        kept = None
        if train and args.kept:
            model.zero_grad(set_to_none=True)
            from uninet_mm.utils.memory import saved_tensor_bytes
            out, kept = saved_tensor_bytes(lambda: net(x), list(model.parameters()))
            del out
            kept /= 2**20
        base = mem_start()
        try:
            for _ in range(args.warmup):
                step()
            sync()
            times = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                step()
                sync()
                times.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001  (out of memory, unsupported op, ...)
            if sampler:
                sampler.pop().stop()
            result[mode] = dict(error=f'{type(e).__name__}: {str(e).splitlines()[0][:200]}')
            continue
        result[mode] = dict(
            images_per_s=args.shape[0] / min(times),           # best iteration
            mean_images_per_s=args.shape[0] * len(times) / sum(times),
            seconds_per_iter=times,
            peak_mem_mb=mem_peak(base) / 2**20)
        if kept is not None:
            result[mode]['kept_for_backward_mb'] = kept
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', nargs='+', default=list(ALL_MODELS),
                   help=f'any of {list(ALL_MODELS)} (comma or space separated)')
    p.add_argument('--shape', type=int, nargs='+', default=[1, 3, 800, 1216],
                   help='input B C H W, or H W (batch 1, 3 channels)')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--iters', type=int, default=5, help='timed iterations per mode')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations per mode')
    p.add_argument('--rounds', type=int, default=1,
                   help='run the whole model list this many times, interleaved, and keep each '
                        "model's best round (other processes on the machine add noise)")
    p.add_argument('--modes', nargs='+', default=['forward', 'forward_backward'],
                   choices=['forward', 'forward_backward'])
    p.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    p.add_argument('--amp', action='store_true',
                   help='autocast: bfloat16 on CPU, float16 on CUDA')
    p.add_argument('--fuse-conv-bn', action='store_true',
                   help='forward with conv+BN fused (models that have fuse_conv_bn())')
    p.add_argument('--deploy', action='store_true',
                   help='forward in the inference form (models that have switch_to_deploy(): '
                        'fused BN/GELU/SE/layer scale, oneDNN kernels on CPU)')
    p.add_argument('--malloc', choices=['glibc', 'keep', 'env'], default='glibc',
                   help="CPU allocator behaviour in every worker: glibc's default, or 'keep' "
                        'freed memory in the heap (no page faults per iteration; mallopt at '
                        'start, as tools/train.py; see uninet_mm/utils/malloc.py), or the '
                        "same through 'env' GLIBC_TUNABLES set when the worker starts")
    p.add_argument('--plain-train', nargs='*', metavar='FUNCTION',
                   help="forward+backward without UniNet's memory-efficient training "
                        'functions (uninet_mm/models/train_ops.py: bn_gelu, se_conv; all when '
                        'none is named): the plain autograd path')
    p.add_argument('--channels-last', action='store_true', help='channels_last memory format')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile the model (inductor; weights frozen for forward)')
    p.add_argument('--kept', action='store_true',
                   help='also measure the activations kept for backward (MB, one extra forward '
                        'with saved-tensor hooks; printed per model, in the JSON)')
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--force', action='store_true', help='write over an existing --out file')
    p.add_argument('--in-process', action='store_true',
                   help='run all models in this process (CPU peak memory is then not '
                        'separated per model)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m for item in args.models for m in item.split(',') if m]
    if args.out and not args.worker:
        from uninet_mm.apis.workdir import refuse_output
        refuse_output(p, args.out, force=args.force, tool='benchmark_backbones')
    for m in args.models:
        if m not in ALL_MODELS:
            p.error(f'unknown model {m!r}; choose from {list(ALL_MODELS)}')
    for f in args.plain_train or []:
        if f not in ('bn_gelu', 'se_conv'):
            p.error(f"--plain-train: unknown function {f!r}; choose from 'bn_gelu', 'se_conv' "
                    f'(uninet_mm/models/train_ops.py), or none for all')
    if len(args.shape) == 2:
        args.shape = [1, 3] + args.shape
    if len(args.shape) != 4:
        p.error('--shape takes B C H W or H W')
    return args


def _worker_argv(args, name):
    argv = [sys.executable, osp.abspath(__file__), '--worker', name, '--models', name,
            '--shape', *map(str, args.shape), '--threads', str(args.threads),
            '--iters', str(args.iters), '--warmup', str(args.warmup), '--device', args.device,
            '--rounds', '1', '--malloc', args.malloc, *(['--kept'] if args.kept else []),
            '--modes', *args.modes]
    for flag in ('amp', 'fuse_conv_bn', 'deploy', 'channels_last', 'compile'):
        if getattr(args, flag):
            argv.append('--' + flag.replace('_', '-'))
    if args.plain_train is not None:
        argv += ['--plain-train', *args.plain_train]
    return argv


def run_subprocess(args, name):
    env = dict(os.environ)
    if args.malloc == 'env':
        env['GLIBC_TUNABLES'] = ':'.join(filter(None, [env.get('GLIBC_TUNABLES'),
                                                       MALLOC_TUNABLES]))
    from uninet_mm.utils.worker import run_worker
    result = run_worker(_worker_argv(args, name), cwd=ROOT, env=env)
    if 'error' in result:
        result.update(model=name, notes=[])
    return result


def _best_of(rounds):
    """One result per model: per mode the round with the most images/s (all rounds kept)."""
    best = dict(rounds[0])
    for mode in ('forward', 'forward_backward'):
        ok = [r[mode] for r in rounds if isinstance(r.get(mode), dict) and 'images_per_s' in
              r[mode]]
        if ok:
            best[mode] = dict(max(ok, key=lambda m: m['images_per_s']),
                              rounds_images_per_s=[m['images_per_s'] for m in ok])
    best['load_average_1min'] = [x for r in rounds for x in r.get('load_average_1min', [])]
    best['wall_s'] = sum(r.get('wall_s', 0) for r in rounds)
    return best


def format_table(results, args):
    ref = next((r for r in results if r['model'] == REFERENCE), None)
    mem_what = ('peak RSS increase' if args.device == 'cpu' else 'max_memory_allocated')
    head = (f'{"model":<13}{"params":>8} | {"fwd img/s":>10}{"x Swin-T":>9}{"peak MB":>9} | '
            f'{"f+b img/s":>10}{"x Swin-T":>9}{"peak MB":>9}')
    lines = [f'input {"x".join(map(str, args.shape))}, {args.device}, {args.threads} threads, '
             f'{args.warmup} warm-up + {args.iters} timed iterations (best one), '
             f'best of {args.rounds} interleaved round(s)'
             + (', bf16/fp16 autocast' if args.amp else '')
             + (', switch_to_deploy()' if args.deploy else '')
             + (', fuse_conv_bn()' if args.fuse_conv_bn else '')
             + (', channels_last' if args.channels_last else '')
             + (', malloc keeps freed memory (mallopt)' if args.malloc == 'keep' else '')
             + (', malloc keeps freed memory (GLIBC_TUNABLES)' if args.malloc == 'env' else '')
             + ((', plain training path' + (f' ({",".join(args.plain_train)})'
                                             if args.plain_train else ''))
                if args.plain_train is not None else '')
             + (', torch.compile' if args.compile else '')
             + f'; memory = {mem_what} ('
             + ('CPU RSS incl. allocator caching' if args.device == 'cpu' else 'tensors') + ')',
             head, '-' * len(head)]
    for r in results:
        cells = [f'{r["model"]:<13}{r.get("params", 0) / 1e6:>7.1f}M']
        for mode in ('forward', 'forward_backward'):
            m = r.get(mode)
            if not m or 'error' in m:
                cells.append(f'{"n/a" if not m else "error":>10}{"":>9}{"":>9}')
                continue
            rm = (ref or {}).get(mode) or {}
            ratio = m['images_per_s'] / rm['images_per_s'] if rm.get('images_per_s') else None
            cells.append(f'{m["images_per_s"]:>10.3f}'
                         f'{(f"{ratio:.2f}x" if ratio else "-"):>9}{m["peak_mem_mb"]:>9.0f}')
        lines.append(' | '.join(cells))
        fb = r.get('forward_backward')
        if isinstance(fb, dict) and 'kept_for_backward_mb' in fb:
            lines.append(f'    kept for backward: {fb["kept_for_backward_mb"]:.0f} MB')
        for n in r.get('notes', []):
            lines.append(f'    note: {n}')
        if 'error' in r:
            lines.append(f'    error: {r["error"]}')
        for mode in ('forward', 'forward_backward'):
            if isinstance(r.get(mode), dict) and 'error' in r[mode]:
                lines.append(f'    {mode} error: {r[mode]["error"]}')
    loads = [x for r in results for x in r.get('load_average_1min', [])]
    lines.append('x Swin-T: images/s relative to Swin-T (higher is faster). released_*: the '
                 'released layout with naive attention (uninet_mm/apis/released.py).')
    if loads:
        lines.append(f'machine load (1-min average) before/after each model: {min(loads):.1f} '
                     f'to {max(loads):.1f} on {os.cpu_count()} CPUs'
                     + (' -- other processes competed for the CPUs: figures are noisy'
                        if max(loads) > (os.cpu_count() or 1) * 0.75 + args.threads else ''))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        from uninet_mm.utils.worker import print_result
        print_result(run_one(args.worker, args))
        return
    runs = {name: [] for name in args.models}
    for rnd in range(args.rounds):
        for name in args.models:
            t, load_before = time.time(), os.getloadavg()[0]
            r = run_one(name, args) if args.in_process else run_subprocess(args, name)
            r['wall_s'] = round(time.time() - t, 1)
            # other processes on the machine distort the figures: keep the evidence with them
            r['load_average_1min'] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            runs[name].append(r)
            print(f'  round {rnd + 1}/{args.rounds} {name}: done in {r["wall_s"]} s',
                  file=sys.stderr, flush=True)
    results = [_best_of(rs) for rs in runs.values()]
    import torch
    table = format_table(results, args)
    print(table)
    if args.out:
        meta = dict(shape=args.shape, device=args.device, threads=args.threads,
                    iters=args.iters, warmup=args.warmup, rounds=args.rounds, amp=args.amp,
                    channels_last=args.channels_last, compile=args.compile,
                    fuse_conv_bn=args.fuse_conv_bn, deploy=args.deploy, malloc=args.malloc,
                    plain_train=args.plain_train,
                    torch=torch.__version__,
                    python=platform.python_version(), machine=platform.machine(),
                    cpu_count=os.cpu_count(), load_average_1_5_15min=os.getloadavg(),
                    memory=('CPU: peak resident set size (max of VmHWM, reset before each '
                            'mode, and RSS polled every 10 ms) minus the RSS before the mode, '
                            'in MiB' if args.device == 'cpu'
                            else 'torch.cuda.max_memory_allocated minus the allocation before '
                                 'the mode, in MiB'),
                    reference=REFERENCE)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(meta=meta, results=results, table=table), f, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
