"""Speed and peak memory of one distillation train step, vs the floor.

Builds every method as a real ``AFDDistiller`` from a paper config
(``teacher_ckpt=None``, random weights: speed does not depend on them) with
an SGD optimizer over its trainable parameters, and times the full train
step ``model.loss(inputs, data_samples)`` -> sum -> backward -> step ->
zero_grad. The floor is what any distillation step costs at least: the
same kind of teacher and student, teacher forward under ``no_grad`` +
student forward + CE + backward + step, with no recorder, loss or KD::

    python tools/benchmark_speed.py [--pair r56_r20] [--batch 64]
        [--iters 20] [--warmup 3] [--methods floor,afd,kd,at,...]
        [--device cpu|cuda] [--mem-iters 3] [--threads N]
        [--mem-mode subprocess|inprocess] [--mem-procs 3]
        [--malloc keep|default]

Methods: ``floor``; ``afd`` (``configs/afd_<pair>.py``: AFD + KD 0.9);
``afd_torch``, the same with afd_mm's C kernels switched off
(``AFD_MM_KERNELS=0`` during its steps: g, v and the linked distances by
PyTorch ops, what the kernels buy, measured beside it);
``kd``, ``at``, ``fitnet``, ``rkd``, ``crd``, ``l2t``: the shipped
``configs/baselines/<method>_<pair>.py`` (KD 0.9 included, as there), or
for a pair without one, the AFD config with that loss on the stage ends
(AT, FitNet, L2T) or the pooled features (RKD, CRD). ``l2t`` is skipped,
with a log line, while afd_mm cannot build or run it.

Time: in one process, all models built up front; after ``--warmup`` steps
of each, ``--iters`` rounds each run one step of every method, the order
rotated every round, so that load from other processes hits every method
alike. Reported: the median ms per step and its ratio to the floor's.

Peak memory of a step (MiB) = the bytes the method keeps between steps
(its parameters, buffers and optimizer state: teacher, student, loss) +
the growth of memory during one step above what was in use when it began
(activations, recorded features, gradients, temporaries), what
``torch.cuda.max_memory_allocated`` reports for a process that holds only
that method. By default each method is measured in fresh processes of
this script (``--mem-mode subprocess``: no other method's heap around),
``--warmup`` steps, then the median of ``--mem-iters`` steps, and the
median over ``--mem-procs`` such processes;
``--mem-mode inprocess`` measures in this process, after the timed rounds:

* cuda: growth = ``max_memory_allocated`` after
  ``reset_peak_memory_stats`` - ``memory_allocated`` before the step;
* cpu: growth = VmHWM - VmRSS of ``/proc/self/status`` around the step,
  after ``malloc_trim(0)`` (freed heap pages go back to the system, so
  the step's allocations must fault them in again and show in RSS) and
  writing ``5`` to ``/proc/self/clear_refs`` (resets VmHWM to the current
  RSS, Linux >= 4.0); ``ru_maxrss`` cannot be reset, hence not used. For
  these steps glibc serves blocks >= 64 KiB by mmap, so that a freed
  tensor leaves RSS at once instead of staying in the heap
  (``_mmap_large_blocks``; it would slow the timed steps). RSS also counts
  what the C allocator and oneDNN hold beyond live tensors, about the same
  for every method, so CPU ratios sit a little closer to 1 than the tensor
  bytes a GPU counts.

Tensor memory (the ``peak tensor MiB`` column, every device): the same
state bytes + the peak of the bytes of tensor storages that the step's
ops create and that are still alive (``_LiveTensorBytes``, counted at the
PyTorch dispatcher in this process). It is deterministic and counts what
a GPU's allocator would hold for tensors; RSS also holds the C heap,
oneDNN's buffers and page-granular leftovers, and varies by several MiB
from run to run.

On a CPU shared with other jobs use ``--threads 1``: with more threads
than free cores every parallel op waits for a descheduled thread, which
swamps the differences being measured.

Allocator (CPU, ``--malloc``): by default the timed steps run as
``tools/train.py`` runs them, with glibc keeping freed memory for reuse
(``afd_mm/utils/malloc.py``). ``--malloc default`` keeps glibc's own
behaviour, where each step's backward returns memory that the next step
faults back in: every method is slower, and by how much depends on where
its allocations land in the heap, which adds a few per cent of noise to
the ratios.
"""
import argparse
import contextlib
import gc
import importlib
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import weakref

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

import afd_mm  # noqa: E402,F401  (registers)
from afd_mm.ops import KERNEL_ENV  # noqa: E402
from afd_mm.registry import MODELS  # noqa: E402
from afd_mm.utils.malloc import (  # noqa: E402
    MALLOC_ENV,
    keep_freed_memory,
    set_thresholds,
    trim_heap,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


_STAGES = dict(type='afd_mm.FeatureRecorder', patterns='backbone.layer*')
_POOLED = dict(type='afd_mm.FeatureRecorder', patterns='neck.gap')

# config name, default batch, input size, dataset length (CRD's banks)
PAIRS = {
    'r56_r20': dict(name='r56_r20_cifar100', batch=64, size=32,
                    num_data=50000),
    'wrn40-2_wrn16-2': dict(name='wrn40-2_wrn16-2_cifar100', batch=64,
                            size=32, num_data=50000),
    'r34_r18_imagenet': dict(name='r34_r18_imagenet', batch=32, size=224,
                             num_data=1281167),
}

# a baseline without a config in configs/baselines/ for the pair: the AFD
# config with these (distill_loss, recorder of both sides); KD stays 0.9
# as in the shipped baseline configs
FALLBACKS = {
    'kd': (None, None),
    'at': (dict(type='afd_mm.ATLoss'), _STAGES),
    'fitnet': (dict(type='afd_mm.FitNetLoss'), _STAGES),
    'rkd': (dict(type='afd_mm.RKDLoss'), _POOLED),
    'crd': (dict(type='afd_mm.CRDLoss'), _POOLED),
    'l2t': (dict(type='afd_mm.L2TLoss'), _STAGES),
}
METHODS = ('floor', 'afd', 'afd_torch', 'kd', 'at', 'fitnet', 'rkd', 'crd',
           'l2t')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train-step time and peak memory of distillation '
        'methods, as ratios to the floor, measured side by side')
    parser.add_argument('--pair', default='r56_r20', choices=sorted(PAIRS))
    parser.add_argument('--batch', type=int, default=None,
                        help='batch size (default: 64 on CIFAR, 32 on '
                        'ImageNet, the per-GPU batch of its config)')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed steps per method (default 20)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per method first (default 3)')
    parser.add_argument('--mem-iters', type=int, default=3,
                        help='memory measurements per method (default 3)')
    parser.add_argument('--methods', default=','.join(METHODS),
                        help='comma-separated, from ' + ', '.join(METHODS)
                        + ' (floor is always added)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when present)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--mem-mode', default='subprocess',
                        choices=('subprocess', 'inprocess'),
                        help='measure memory in a fresh process per method '
                        '(default) or in this one, beside the other '
                        'methods (faster, noisier on CPU)')
    parser.add_argument('--mem-procs', type=int, default=3,
                        help='fresh processes per method in subprocess '
                        'mode, median taken (default 3: RSS varies by a '
                        'few %% from process to process)')
    parser.add_argument('--malloc', default='keep',
                        choices=('keep', 'default'),
                        help='CPU timed rounds: glibc keeps freed memory '
                        'for reuse, as tools/train.py sets it (keep, '
                        'default; afd_mm/utils/malloc.py), or glibc\'s own '
                        'behaviour, which faults freed pages back in every '
                        'step (default)')
    parser.add_argument('--probe-out', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f'unknown --methods {unknown}; choose from {METHODS}')
    args.methods = ['floor'] + [m for m in METHODS[1:] if m in methods]
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return args


# ------------------------------------------------------------- building
def config_path(pair, method):
    """configs/baselines/<method>_<pair>.py if shipped, else the AFD one."""
    name = PAIRS[pair]['name']
    path = osp.join(REPO, 'configs', 'baselines', f'{method}_{name}.py')
    if method in ('floor', 'afd', 'afd_torch') or not osp.isfile(path):
        path = osp.join(REPO, 'configs', f'afd_{name}.py')
    return path


def model_config(pair, method, lr=None):
    """The AFDDistiller config of ``method`` on ``pair``.

    ``lr`` is L2T's look-ahead lr, which a Runner would give it.
    """
    path = config_path(pair, method)
    cfg = Config.fromfile(path).model
    cfg.teacher_ckpt = None
    if method == 'floor':
        cfg.distill_loss, cfg.kd_weight = None, 0.0
    elif (method not in ('afd', 'afd_torch')
          and osp.basename(path).startswith('afd_')):
        loss, recorder = FALLBACKS[method]
        if loss is not None and loss['type'] == 'afd_mm.CRDLoss':
            loss = dict(loss, num_data=PAIRS[pair]['num_data'])
        cfg.distill_loss = loss
        if recorder is not None:
            cfg.teacher_recorder = cfg.student_recorder = recorder
    if method == 'l2t' and lr is not None:
        cfg.distill_loss = dict(cfg.distill_loss, inner_lr=lr)
    return cfg


def build(pair, method, device, optim_cfg):
    """(distiller in train mode on ``device``, its SGD optimizer)."""
    model = MODELS.build(model_config(pair, method, optim_cfg['lr']))
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.SGD(params, **optim_cfg)


def sgd_args(pair):
    """lr, momentum, weight decay of the pair config's SGD."""
    cfg = Config.fromfile(config_path(pair, 'afd'))
    opt = cfg.optim_wrapper.optimizer
    return dict(lr=opt.lr, momentum=opt.get('momentum', 0.0),
                weight_decay=opt.get('weight_decay', 0.0))


def batch(pair, size, device, seed=0):
    """Random inputs (B, 3, H, W) and DataSamples with labels, sample_idx."""
    spec = PAIRS[pair]
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 3, spec['size'], spec['size'], generator=gen)
    labels = torch.randint(100, (size, ), generator=gen)
    idx = torch.randperm(spec['num_data'], generator=gen)[:size]
    samples = []
    for label, index in zip(labels.tolist(), idx.tolist()):
        sample = DataSample(metainfo=dict(sample_idx=index))
        samples.append(sample.set_gt_label(label))
    return inputs.to(device), samples


# ----------------------------------------------------------------- steps
def floor_losses(model, inputs, data_samples):
    """Teacher forward (no grad) + student forward + CE: the floor."""
    with torch.no_grad():
        model.teacher(inputs, mode='tensor')
    return model.student.loss(inputs, data_samples)


def train_step(model, optimizer, inputs, data_samples, floor):
    losses = (floor_losses(model, inputs, data_samples) if floor else
              model.loss(inputs, data_samples))
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


@contextlib.contextmanager
def _without_kernels():
    """afd_mm's C kernels off (``AFD_MM_KERNELS=0``) for ``afd_torch``."""
    before = os.environ.get(KERNEL_ENV)
    os.environ[KERNEL_ENV] = '0'
    try:
        yield
    finally:
        if before is None:
            del os.environ[KERNEL_ENV]
        else:
            os.environ[KERNEL_ENV] = before


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed_step(run, device):
    """Milliseconds of one call of ``run``."""
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return 1e3 * (time.perf_counter() - start)


# ---------------------------------------------------------------- memory
def _status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{key} not in /proc/self/status')


_KEPT = [False]  # True once main() has applied keep_freed_memory


@contextlib.contextmanager
def _mmap_large_blocks():
    """Serve blocks >= 64 KiB by mmap, so a freed tensor leaves RSS at once.

    glibc otherwise raises this threshold as large blocks are freed and
    keeps them in its heap, where their placement decides how much RSS a
    step holds: noise of tens of MiB that a GPU's ``max_memory_allocated``
    does not have. Freed heap tops go back at glibc's initial 128 KiB
    trim threshold. Set for the memory rounds only (it makes every
    allocation fault its pages in, which would slow the timed steps);
    afterwards ``--malloc keep``'s settings again, or a 32 MiB mmap
    threshold, the top of glibc's own dynamic one.
    """
    set_thresholds(64 * 1024, 128 * 1024)
    try:
        yield
    finally:
        if _KEPT[0]:
            keep_freed_memory({MALLOC_ENV: 'keep'})
        else:
            set_thresholds(32 * 1024 * 1024, 128 * 1024)


def _reset_cpu_peak():
    """Trim the heap, reset VmHWM; return the RSS in bytes."""
    gc.collect()
    trim_heap()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return 1024 * _status_kib('VmRSS')


def state_bytes(model, optimizer):
    """Bytes of the parameters, buffers and optimizer state, each once."""
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in tensors}
    return sum(storages.values())


def step_growth(run, device):
    """Bytes by which memory in use grows at most during ``run()``."""
    if device.startswith('cuda'):
        _sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        _sync(device)
        return torch.cuda.max_memory_allocated() - before
    before = _reset_cpu_peak()
    run()
    return 1024 * _status_kib('VmHWM') - before


class _LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and alive.

    Every op's outputs are looked at once; a storage that is neither one
    of the op's inputs' (views, in-place results, e.g. of a parameter) nor
    already counted is new, and is counted until it is freed (a finalizer
    on the storage, which PyTorch keeps alive exactly as long as the
    memory).
    """

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage().data_ptr()
                  for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._count(tensor.untyped_storage(), inputs)
        return out

    def _count(self, storage, inputs):
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live or key in inputs:
            return
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key):
        self.current -= self.live.pop(key, 0)


def tensor_peak(run, state):
    """State bytes + peak live tensor bytes created during ``run()``."""
    gc.collect()
    mode = _LiveTensorBytes()
    with mode:
        run()
    return state + mode.peak


# ------------------------------------------------------------------ main
def build_run(pair, method, device, optim_cfg, inputs, samples):
    """(one train step of ``method`` as a closure, its state bytes).

    None, with a log line, for L2T while afd_mm cannot build or run it.
    """
    try:
        if method == 'l2t':  # registers L2TLoss, not yet in losses/
            importlib.import_module('afd_mm.models.losses.l2t_loss')
        model, optimizer = build(pair, method, device, optim_cfg)

        def run():
            with (_without_kernels() if method == 'afd_torch' else
                  contextlib.nullcontext()):
                train_step(model, optimizer, inputs, samples,
                           method == 'floor')

        run()  # creates the optimizer state counted by state_bytes
    except Exception as err:  # only L2T is optional
        if method != 'l2t':
            raise
        print_log(f'l2t skipped: {type(err).__name__}: {err}',
                  logger='current')
        return None
    return run, state_bytes(model, optimizer)


def _rotations(names, rounds):
    for r in range(rounds):
        k = r % len(names)
        yield names[k:] + names[:k]


def measure_times(runs, device, iters, warmup):
    """{method: median ms per step}, in interleaved rounds."""
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    times = {n: [] for n in names}
    for order in _rotations(names, iters):
        for name in order:
            times[name].append(timed_step(runs[name], device))
    return {n: statistics.median(times[n]) for n in names}


def measure_peaks(runs, states, device, mem_iters):
    """{method: median peak bytes of a step}, in interleaved rounds."""
    names = list(runs)
    peaks = {n: [] for n in names}
    cpu = device == 'cpu'  # RSS: see _mmap_large_blocks
    with _mmap_large_blocks() if cpu else contextlib.nullcontext():
        for order in _rotations(names, mem_iters):
            for name in order:
                peaks[name].append(states[name]
                                   + step_growth(runs[name], device))
    return {n: statistics.median(peaks[n]) for n in names}


def probe_peaks(args, method, batch_size, out_dir):
    """Median over ``--mem-procs`` fresh processes of ``probe_peak``."""
    return statistics.median(probe_peak(args, method, batch_size, out_dir)
                             for _ in range(args.mem_procs))


def probe_peak(args, method, batch_size, out_dir):
    """Peak bytes of ``method``, measured by this script in a new process.

    The child builds that method alone, runs ``--warmup`` steps, measures
    ``--mem-iters`` steps as ``measure_peaks`` does and writes the median
    to a file.
    """
    out = osp.join(out_dir, f'{method}.json')
    cmd = [sys.executable, osp.abspath(__file__), '--pair', args.pair,
           '--batch', str(batch_size), '--warmup', str(args.warmup),
           '--mem-iters', str(args.mem_iters), '--methods', method,
           '--device', args.device, '--probe-out', out]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    child = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    if child.returncode:
        raise RuntimeError(f'The memory probe of {method!r} failed:\n'
                           f'{child.stderr[-3000:]}')
    with open(out) as f:
        return json.load(f)[method]


def _probe_main(args, runs, states):
    """The child of ``probe_peak``: only the last method is measured."""
    method = args.methods[-1]
    run = {method: runs[method]}
    for _ in range(args.warmup):
        run[method]()
    peak = measure_peaks(run, states, args.device, args.mem_iters)
    with open(args.probe_out, 'w') as f:
        json.dump(peak, f)


def device_name(device):
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'CPU {cpu}, {torch.get_num_threads()} torch threads'


def format_table(results, title, device='cpu'):
    """Markdown table: method, ms/step, peak memory, each with its ratio."""
    floor = results['floor']
    peak = 'peak RSS MiB' if device == 'cpu' else 'peak allocated MiB'
    lines = [title, '',
             f'| method | ms/step (median) | x floor | {peak} | x floor '
             '| peak tensor MiB | x floor |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for name, values in results.items():
        cells = [f'{values[0]:.1f} | {values[0] / floor[0]:.3f}']
        cells += [f'{v / 2**20:.1f} | {v / f:.3f}'
                  for v, f in zip(values[1:], floor[1:])]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cpu' and not osp.exists('/proc/self/clear_refs'):
        raise RuntimeError('CPU peak memory needs Linux /proc/self/'
                           'clear_refs; run with --device cuda.')
    if args.malloc == 'keep' and not args.probe_out:  # as tools/train.py
        _KEPT[0] = keep_freed_memory({MALLOC_ENV: 'keep'})
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    bsz = args.batch or PAIRS[args.pair]['batch']
    inputs, samples = batch(args.pair, bsz, args.device)
    optim_cfg = sgd_args(args.pair)
    methods = args.methods[-1:] if args.probe_out else args.methods
    runs, states = {}, {}
    for method in methods:
        built = build_run(args.pair, method, args.device, optim_cfg,
                          inputs, samples)
        if built is not None:
            runs[method], states[method] = built
    if args.probe_out:
        return _probe_main(args, runs, states)
    times = measure_times(runs, args.device, args.iters, args.warmup)
    if args.mem_mode == 'inprocess':
        peaks = measure_peaks(runs, states, args.device, args.mem_iters)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            peaks = {m: probe_peaks(args, m, bsz, tmp) for m in runs}
    tensors = {m: tensor_peak(runs[m], states[m]) for m in runs}
    results = {m: (times[m], peaks[m], tensors[m]) for m in runs}
    title = (f'{args.pair}, batch {bsz}, {args.iters} timed steps per '
             f'method (medians), {device_name(args.device)}')
    if args.device == 'cpu':
        title += f', malloc {args.malloc}'
    table = format_table(results, title, args.device)
    print_log('\n' + table, logger='current')
    return results, table


if __name__ == '__main__':
    main()
